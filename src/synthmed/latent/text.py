"""Optional text conditioning of the latent UNet: a frozen local CLIP text encoder and caption embeddings."""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_ENCODER_DIR = "text_encoder"
TOKENIZER_DIR = "tokenizer"


def text_encoder_dirs(folder: str | Path) -> tuple[Path, Path]:
    """(text encoder folder, tokenizer folder) inside a Stable Diffusion folder or a saved latent run."""
    folder = Path(folder).expanduser()
    encoder, tokenizer = folder / TEXT_ENCODER_DIR, folder / TOKENIZER_DIR
    if not (encoder / "config.json").is_file() or not tokenizer.is_dir():
        raise FileNotFoundError(
            f"{folder} lacks {TEXT_ENCODER_DIR}/config.json or {TOKENIZER_DIR}/: --text-encoder expects a local "
            f"folder with a CLIP text encoder in {TEXT_ENCODER_DIR}/ and its tokenizer in {TOKENIZER_DIR}/ (any "
            f"diffusers Stable Diffusion folder has both). synthmed downloads nothing."
        )
    return encoder, tokenizer


def load_text_encoder(folder: str | Path):
    """(CLIPTokenizer, frozen CLIPTextModel in eval mode) from `folder` (see text_encoder_dirs)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    encoder_dir, tokenizer_dir = text_encoder_dirs(folder)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(str(encoder_dir), local_files_only=True).eval().requires_grad_(False)
    return tokenizer, encoder


def save_text_encoder(folder: str | Path, *, tokenizer, encoder) -> None:
    """Copy the tokenizer and encoder into `folder` (so a run samples on its own)."""
    folder = Path(folder)
    tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    encoder.save_pretrained(str(folder / TEXT_ENCODER_DIR))


@torch.no_grad()
def embed_captions(
    captions: list[str], *, tokenizer, encoder, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of each distinct caption plus the empty caption (last row), and each caption's row index.

    Returns `table` [U + 1, tokens, width] and `index` [len(captions)]; `table[-1]` is the null
    (empty) caption used for classifier-free guidance.
    """
    distinct = list(dict.fromkeys(captions))
    texts = distinct + [""]
    rows = []
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(
            texts[start : start + batch_size],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        rows.append(encoder(ids)[0].float())
    position = {text: i for i, text in enumerate(distinct)}
    return torch.cat(rows), torch.tensor([position[c] for c in captions], dtype=torch.long)
