"""Sample a latent run: denoise latents with guidance, decode to pixels, write a synthetic image set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from synthmed.data.dataset import from_model_range
from synthmed.files import portable_name, sha256_file
from synthmed.latent.autoencoder import load_autoencoder
from synthmed.latent.conditioning import encode_metadata
from synthmed.latent.model import CONDITIONS_NAME, WEIGHTS_NAME, LatentDenoiser, load_latent_model
from synthmed.latent.text import embed_captions, load_text_encoder
from synthmed.models.device import resolve_device
from synthmed.models.sampling import SAMPLERS, initial_noise, make_scheduler
from synthmed.sample.writer import SyntheticSetWriter

log = logging.getLogger(__name__)


def choose_conditions(
    conditions: pd.DataFrame, *, label: str, seeds: list[int], fixed: Mapping[str, object]
) -> pd.DataFrame:
    """Metadata for each image: `fixed` values where given, else a same-class training row drawn with its seed."""
    fields = [c for c in conditions.columns if c != "label"]
    pool = conditions[conditions["label"].astype(str) == str(label)]
    rows = []
    for seed in seeds:
        row: dict[str, object] = {"label": label}
        drawn = pool.iloc[int(np.random.default_rng(seed).integers(len(pool)))] if len(pool) else None
        for field in fields:
            row[field] = fixed[field] if fixed.get(field) is not None else (None if drawn is None else drawn[field])
        rows.append(row)
    return pd.DataFrame(rows, columns=["label", *fields])


@torch.no_grad()
def denoise_latents(
    model: LatentDenoiser,
    scheduler,
    *,
    labels: torch.Tensor,
    metadata: dict[str, torch.Tensor],
    generators: list[torch.Generator],
    steps: int,
    guidance_scale: float,
    stochastic: bool,
    text: torch.Tensor | None = None,
    null_text: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Classifier-free-guided reverse process in latent space (conditional and null passes batched).

    Text-conditioned models take caption embeddings `text` [B, tokens, width]; the null pass uses
    `null_text` [1, tokens, width] (the empty caption).
    """
    config = model.config
    scheduler.set_timesteps(steps)
    noise = initial_noise(generators, (config.latent_channels, config.latent_size, config.latent_size))
    x = (noise * scheduler.init_noise_sigma).to(device)
    guided = guidance_scale != 1.0
    batch = len(labels)
    drop = (
        torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)
        if guided
        else None
    )
    both_labels = (torch.cat([labels, labels]) if guided else labels).to(device)
    both_meta = {k: (torch.cat([v, v]) if guided else v).to(device) for k, v in metadata.items()}
    both_text = (
        torch.cat([text, null_text.expand_as(text)]) if guided and text is not None and null_text is not None else text
    )
    both_text = both_text.to(device) if both_text is not None else None
    step_kwargs = {"generator": generators} if stochastic else {}
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        model_in = torch.cat([model_in, model_in]) if guided else model_in
        out = model(model_in, t.expand(len(model_in)).to(device), both_labels, both_meta, drop, both_text).float()
        if guided:
            cond, uncond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x


def sample_latent(
    run: str | Path,
    *,
    out: str | Path,
    n_per_class: int,
    sampler: str = "ddim",
    steps: int | None = None,
    guidance_scale: float = 2.0,
    seed: int = 0,
    batch_size: int = 16,
    classes: list[str] | None = None,
    age_years: float | None = None,
    sex: str | None = None,
    view: str | None = None,
    prompt: str | None = None,
    formats: tuple[str, ...] = ("png",),
    device: str = "auto",
) -> Path:
    """Write `n_per_class` decoded images per class to `out` (images + manifest.csv); image k uses seed `seed + k`.

    Text-conditioned runs use `prompt` for every image, or else a training caption of the image's
    class (drawn with its seed, like the metadata).
    """
    run = Path(run).expanduser()
    if n_per_class < 1:
        raise ValueError(f"--n-per-class must be >= 1, got {n_per_class}")
    torch_device = resolve_device(device)
    model, train_scheduler = load_latent_model(run / "model")
    vae, ae_config = load_autoencoder(run / "autoencoder")
    model.to(torch_device)
    vae.to(torch_device)
    config = model.config
    class_names = config.class_names or [str(i) for i in range(config.num_classes)]
    chosen = classes or class_names
    unknown = [c for c in chosen if c not in class_names]
    if unknown:
        raise ValueError(f"classes {unknown} are not in this model; it knows {class_names}.")
    conditions_path = run / "model" / CONDITIONS_NAME
    conditions = (
        pd.read_csv(conditions_path, dtype={"label": str})
        if conditions_path.is_file()
        else pd.DataFrame(columns=["label"])
    )
    fixed = {"age_years": age_years, "sex": sex, "view": view, "caption": prompt}
    if prompt is not None and not model.uses_text:
        raise ValueError(f"{run} was trained without text conditioning; drop --prompt (or train with --text-encoder).")
    tokenizer = text_model = None
    if model.uses_text:
        tokenizer, text_model = load_text_encoder(run / "text")
    scheduler = make_scheduler(sampler, train_scheduler)  # validates the sampler name
    steps = steps or SAMPLERS[sampler].default_steps
    provenance = {
        "sampler": sampler,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "checkpoint": portable_name(run / "model"),
        "checkpoint_sha256": sha256_file(run / "model" / WEIGHTS_NAME),
        "provider": "synthmed-latent",
        "model": f"latent-diffusion f{ae_config.downsample_factor}",
    }
    jobs = [
        (name, class_names.index(name), seed + ci * n_per_class + j)
        for ci, name in enumerate(chosen)
        for j in range(n_per_class)
    ]
    with (
        SyntheticSetWriter(out, formats=formats) as writer,
        tqdm(total=len(jobs), desc="latent sample", unit="img") as bar,
    ):
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            metadata_rows = pd.concat(
                [choose_conditions(conditions, label=name, seeds=[s], fixed=fixed) for name, _, s in chunk],
                ignore_index=True,
            )
            text = null_text = None
            if model.uses_text:
                captions = [str(c) if pd.notna(c) else "" for c in metadata_rows.get("caption", [""] * len(chunk))]
                table, index = embed_captions(captions, tokenizer=tokenizer, encoder=text_model)
                text, null_text = table[index], table[-1:]
            latents = denoise_latents(
                model,
                scheduler,
                labels=torch.tensor([idx for _, idx, _ in chunk]),
                metadata=encode_metadata(metadata_rows, config.metadata),
                generators=[torch.Generator().manual_seed(s) for _, _, s in chunk],
                steps=steps,
                guidance_scale=guidance_scale,
                stochastic=SAMPLERS[sampler].stochastic,
                text=text,
                null_text=null_text,
                device=torch_device,
            )
            with torch.no_grad():
                images = vae.decode(latents / ae_config.scaling_factor).sample.clamp(-1, 1)
            pixels = from_model_range(images.float().cpu()).permute(0, 2, 3, 1).numpy()
            for k, (name, idx, s) in enumerate(chunk):
                meta = {
                    ("prompt" if f == "caption" else f): v
                    for f, v in metadata_rows.iloc[k].items()
                    if f != "label" and pd.notna(v)
                }
                writer.add(pixels[k], label=name, label_idx=idx, seed=s, provenance={**provenance, **meta})
                bar.update(1)
    log.info("wrote %d latent-diffusion images to %s", len(jobs), out)
    return Path(out)
