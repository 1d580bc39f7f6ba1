"""Train the class/metadata-conditioned latent denoiser: build the model and the encoded data, run the one loop.

RUN/autoencoder/   a copy of the autoencoder used (so a run samples on its own)
RUN/text/          a copy of the frozen text encoder + tokenizer (text-conditioned runs only)
RUN/model/         the denoiser (see synthmed.latent.model); the rest is the shared run folder
                   (config.json, stats.jsonl, log.txt, checkpoints/, grids/: synthmed.train.run_files)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from synthmed.data.captions import make_captions
from synthmed.data.manifest import load_image_set, read_dataset_info
from synthmed.files import publish_folder
from synthmed.latent.autoencoder import dataset_images, load_autoencoder, save_autoencoder
from synthmed.latent.conditioning import METADATA_FIELDS, encode_metadata, metadata_spec_from_frame
from synthmed.latent.diffusion import LatentDiffusion
from synthmed.latent.model import UNET_PRESETS, LatentModelConfig
from synthmed.latent.text import embed_captions, load_text_encoder, save_text_encoder
from synthmed.models.config import LATENT_DEFAULT_OBJECTIVE
from synthmed.models.device import launched_without_gpu
from synthmed.train.config import OBJECTIVE_SETTINGS, RESUMABLE_FIELDS, LoopConfig, Objective
from synthmed.train.fit import TrainingData, fit
from synthmed.train.run_files import check_run_folder

log = logging.getLogger(__name__)


class LatentTrainConfig(LoopConfig):
    """A latent run (RUN/config.json): the loop's settings plus data, autoencoder and denoiser choice."""

    dataset: str = Field(description="prepared dataset folder")
    autoencoder: str = Field(description="folder from `latent train-autoencoder`, or a diffusers VAE folder")
    preset: str = Field("32", description=f"UNet size: one of {sorted(UNET_PRESETS)}")
    metadata_fields: list[str] = Field(
        default_factory=lambda: list(METADATA_FIELDS), description="metadata to condition on where the manifest has it"
    )
    split: str = "train"
    text_encoder: str | None = Field(
        None, description="folder with text_encoder/ + tokenizer/ (e.g. an SD folder); None = no text conditioning"
    )
    caption_template: str = "{modality}, {label}"
    objective: Objective = Field(LATENT_DEFAULT_OBJECTIVE, description="diffusion (v-prediction) or flow_matching")
    snr_gamma: float | None = Field(None, gt=0, description="min-SNR-gamma loss weighting; None = plain MSE")
    grid_per_class: int = Field(4, ge=1)
    grid_sampler_steps: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    checkpoint_every_steps: int = Field(1000, ge=1)
    log_every_steps: int = Field(25, ge=1)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "no"


@torch.no_grad()
def encode_dataset(
    vae, images: torch.Tensor, *, batch_size: int = 16, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent means and standard deviations of every image (the autoencoder is frozen: encode once)."""
    means, stds = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="encode latents", unit="batch", leave=False):
        dist = vae.encode(images[start : start + batch_size].to(device)).latent_dist
        means.append(dist.mean.cpu())
        stds.append(dist.std.cpu())
    return torch.cat(means), torch.cat(stds)


def train_latent(config: LatentTrainConfig, *, out: str | Path, resume: bool = False) -> Path:
    """Train a latent denoiser on `config.dataset` in the latent space of `config.autoencoder`; returns RUN."""
    from accelerate import PartialState

    out = Path(out).expanduser()
    check_run_folder(out, config.model_dump(mode="json"), resume=resume, resumable=RESUMABLE_FIELDS)
    if config.preset not in UNET_PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {sorted(UNET_PRESETS)}.")
    resumed = resume and (out / "autoencoder").is_dir()
    state = PartialState(cpu=launched_without_gpu())  # joins `accelerate launch` processes (gloo without a GPU)
    device = state.device

    # Load the autoencoder and encode the data once.
    info = read_dataset_info(config.dataset)
    vae, ae_config = load_autoencoder(
        out / "autoencoder" if resumed else config.autoencoder, image_size_px=info.image_size_px
    )
    vae.requires_grad_(False).to(device)
    images, labels = dataset_images(
        config.dataset, split=config.split, channels=ae_config.channels, size_px=ae_config.image_size_px
    )
    frame = load_image_set(config.dataset, split=config.split)
    latent_mean, latent_std = encode_dataset(vae, images, device=device)

    # Embed the captions once (text-conditioned runs).
    text_table = caption_index = tokenizer = text_model = None
    conditions = frame[["label"]].copy()
    if config.text_encoder is not None:
        tokenizer, text_model = load_text_encoder(out / "text" if resumed else config.text_encoder)
        captions = make_captions(frame, template=config.caption_template, modality=info.modality)
        text_table, caption_index = embed_captions(captions, tokenizer=tokenizer, encoder=text_model)
        conditions["caption"] = captions

    # Build the denoiser and the data.
    spec = metadata_spec_from_frame(frame, use=tuple(config.metadata_fields))
    model_config = LatentModelConfig(
        latent_channels=ae_config.latent_channels,
        latent_size=ae_config.latent_size,
        num_classes=len(info.classes),
        class_names=list(info.classes),
        metadata=spec,
        cross_attention_dim=None if text_table is None else int(text_table.shape[-1]),
        prediction_type=OBJECTIVE_SETTINGS[config.objective]["prediction_type"],
        **UNET_PRESETS[config.preset],
    )
    for field in spec.fields:
        conditions[field] = frame[field]
    model = LatentDiffusion.create(
        model_config,
        seed=config.seed,
        vae=vae,
        scaling_factor=float(ae_config.scaling_factor),
        null_text=None if text_table is None else text_table[-1:],
    )
    model.snr_gamma, model.conditions = config.snr_gamma, conditions
    model.grid_per_class, model.grid_steps = config.grid_per_class, config.grid_sampler_steps
    rows = {"labels": labels, **encode_metadata(frame, spec)}
    if text_table is not None and caption_index is not None:
        rows["text"] = text_table[caption_index]
    about = (
        f"latent {config.objective.replace('_', ' ')} on {len(images)} images: {model_config.latent_channels}x"
        f"{model_config.latent_size}x{model_config.latent_size} latents, conditioned on class"
        + "".join(f" + {f}" for f in spec.fields)
    )

    # Keep what sampling needs beside the model (written once, by the main process), then train.
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process and not (out / "autoencoder").is_dir():
        publish_folder(out / "autoencoder", lambda tmp: save_autoencoder(tmp, vae=vae, config=ae_config))
    if state.is_main_process and text_model is not None and not (out / "text").is_dir():
        publish_folder(out / "text", lambda tmp: save_text_encoder(tmp, tokenizer=tokenizer, encoder=text_model))
    state.wait_for_everyone()
    data = TrainingData(
        labels=labels.numpy().astype(np.int64),
        fetch=lambda index: (latent_mean[index], latent_std[index], {k: v[index] for k, v in rows.items()}),
    )
    fit(model, data, config, run_dir=out, resume=resume, about=about)
    return out
