"""Train the class/metadata-conditioned latent denoiser on autoencoder latents (EMA, checkpoints, resume).

RUN/autoencoder/   a copy of the autoencoder used (so a run samples on its own)
RUN/model/         the denoiser (see synthmed.latent.model)
RUN/text/          a copy of the frozen text encoder + tokenizer (text-conditioned runs only)
RUN/run.json       model + training config, dataset, steps done
RUN/stats.jsonl, RUN/checkpoints/step-XXXXXX/train_state.pt
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from synthmed import __version__
from synthmed.data.captions import make_captions
from synthmed.data.manifest import load_image_set, read_dataset_info
from synthmed.files import atomic_write_json, publish_folder
from synthmed.latent.autoencoder import dataset_images, load_autoencoder, save_autoencoder
from synthmed.latent.conditioning import METADATA_FIELDS, encode_metadata, metadata_spec_from_frame
from synthmed.latent.model import UNET_PRESETS, LatentDenoiser, LatentModelConfig, build_scheduler, save_latent_model
from synthmed.latent.text import embed_captions, load_text_encoder, save_text_encoder
from synthmed.models.weights import load_torch_file
from synthmed.train.run_files import (
    TRAIN_STATE_NAME,
    append_stats,
    atomic_torch_save,
    latest_checkpoint,
    make_accelerator,
    prune_checkpoints,
    releases_accelerator,
    step_dir,
)
from synthmed.train.steps import ema_weights, optimizer_step

log = logging.getLogger(__name__)

RUN_INFO_NAME = "run.json"


class LatentTrainConfig(BaseModel):
    """How to train the latent denoiser."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("32", description=f"UNet size: one of {sorted(UNET_PRESETS)}")
    metadata_fields: list[str] = Field(
        default_factory=lambda: list(METADATA_FIELDS), description="metadata to condition on where the manifest has it"
    )
    split: str = "train"
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    max_steps: int = Field(20000, ge=1)
    checkpoint_every_steps: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every_steps: int = Field(25, ge=1)
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 0
    text_encoder: str | None = Field(
        None, description="folder with text_encoder/ + tokenizer/ (e.g. an SD folder); None = no text conditioning"
    )
    caption_template: str = "{modality}, {label}"


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


@releases_accelerator
def train_latent(
    dataset: str | Path, *, autoencoder: str | Path, out: str | Path, train: LatentTrainConfig, resume: bool = False
) -> Path:
    """Train a latent denoiser on `dataset` in the latent space of `autoencoder`; returns the run folder."""
    from diffusers.training_utils import EMAModel

    out = Path(out).expanduser()
    if (out / RUN_INFO_NAME).is_file() and not resume:
        raise FileExistsError(f"{out} already holds a latent run; pass --resume to continue it or choose a new --out.")
    if resume and (out / RUN_INFO_NAME).is_file():
        saved = json.loads((out / RUN_INFO_NAME).read_text())
        old = LatentTrainConfig.model_validate(saved["train"]).model_dump()
        changed = sorted(
            k
            for k, v in train.model_dump().items()
            if old[k] != v and k not in ("max_steps", "checkpoint_every_steps", "log_every_steps")
        )
        if changed:
            raise ValueError(
                f"--resume with changed settings {changed}: continue a run with the settings it began with."
            )
        autoencoder = out / "autoencoder"
        text_source: Path | str | None = out / "text" if train.text_encoder else None
    else:
        text_source = train.text_encoder
    if train.preset not in UNET_PRESETS:
        raise ValueError(f"unknown preset {train.preset!r}; choose one of {sorted(UNET_PRESETS)}.")
    accelerator = make_accelerator(train.mixed_precision)
    device = accelerator.device

    # Load the autoencoder and encode the data once.
    info = read_dataset_info(dataset)
    vae, ae_config = load_autoencoder(autoencoder, image_size_px=info.image_size_px)
    vae.requires_grad_(False).to(device)
    images, labels = dataset_images(
        dataset, split=train.split, channels=ae_config.channels, size_px=ae_config.image_size_px
    )
    frame = load_image_set(dataset, split=train.split)
    latent_mean, latent_std = encode_dataset(vae, images, device=device)
    scale = float(ae_config.scaling_factor)

    # Embed the captions once (text-conditioned runs).
    text_table = caption_index = tokenizer = text_model = None
    conditions = frame[["label"]].copy()
    if text_source is not None:
        tokenizer, text_model = load_text_encoder(text_source)
        captions = make_captions(frame, template=train.caption_template, modality=info.modality)
        text_table, caption_index = embed_captions(captions, tokenizer=tokenizer, encoder=text_model)
        conditions["caption"] = captions

    # Build the denoiser.
    spec = metadata_spec_from_frame(frame, use=tuple(train.metadata_fields))
    config = LatentModelConfig(
        latent_channels=ae_config.latent_channels,
        latent_size=ae_config.latent_size,
        num_classes=len(info.classes),
        class_names=list(info.classes),
        metadata=spec,
        cross_attention_dim=None if text_table is None else int(text_table.shape[-1]),
        **UNET_PRESETS[train.preset],
    )
    metadata = encode_metadata(frame, spec)
    for field in spec.fields:
        conditions[field] = frame[field]
    model = LatentDenoiser(config)
    scheduler = build_scheduler(config)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=train.learning_rate)
    ema = EMAModel(params, decay=train.ema_decay) if train.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(train.seed)
    log.info(
        "latent diffusion on %d images: %dx%dx%d latents, conditioned on class%s",
        len(images),
        config.latent_channels,
        config.latent_size,
        config.latent_size,
        "".join(f" + {f}" for f in spec.fields),
    )

    # Resume.
    start_step = 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_torch_file(ckpt / TRAIN_STATE_NAME, fix=f"delete the damaged checkpoint {ckpt} and resume again")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        start_step = int(state["step"])
        log.info("resumed from %s (step %d)", ckpt, start_step)
    model, optimizer = accelerator.prepare(model, optimizer)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "autoencoder").is_dir():
        publish_folder(out / "autoencoder", lambda tmp: save_autoencoder(tmp, vae=vae, config=ae_config))
    if text_model is not None and not (out / "text").is_dir():
        publish_folder(out / "text", lambda tmp: save_text_encoder(tmp, tokenizer=tokenizer, encoder=text_model))
    run_info = {
        "format": "synthmed-latent-run-v1",
        "train": train.model_dump(),
        "dataset": str(Path(dataset).resolve()),
        "autoencoder_source": str(Path(autoencoder).resolve()),
        "steps_done": start_step,
        "synthmed_version": __version__,
    }
    atomic_write_json(out / RUN_INFO_NAME, run_info)

    def save(step: int) -> None:
        """Checkpoint the training state, then publish the EMA denoiser as RUN/model."""
        unwrapped = accelerator.unwrap_model(model)
        atomic_torch_save(
            {
                "step": step,
                "model": unwrapped.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else {},
                "generator": generator.get_state(),
            },
            step_dir(out, step) / TRAIN_STATE_NAME,
        )
        prune_checkpoints(out, keep=train.keep_checkpoints)
        with ema_weights(ema, params):
            publish_folder(out / "model", lambda tmp: save_latent_model(tmp, model=unwrapped, conditions=conditions))
        atomic_write_json(out / RUN_INFO_NAME, {**run_info, "steps_done": step})

    # Train.
    model.train()
    started = time.perf_counter()
    progress = tqdm(
        range(start_step, train.max_steps),
        initial=start_step,
        total=train.max_steps,
        desc="latent diffusion",
        unit="step",
    )
    for step in progress:
        index = torch.randint(len(images), (train.batch_size,), generator=generator)
        eps = torch.randn(latent_mean[index].shape, generator=generator)
        latents = ((latent_mean[index] + latent_std[index] * eps) * scale).to(device)
        noise = torch.randn(latents.shape, generator=generator).to(device)
        timesteps = torch.randint(0, config.num_train_timesteps, (train.batch_size,), generator=generator).to(device)
        drop = (torch.rand(train.batch_size, generator=generator) < config.condition_dropout_prob).to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        target = noise if config.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
        text = None
        if text_table is not None and caption_index is not None:
            rows = torch.where(drop.cpu(), torch.full_like(index, len(text_table) - 1), caption_index[index])
            text = text_table[rows].to(device)
        with accelerator.autocast():
            prediction = model(
                noisy,
                timesteps,
                labels[index].to(device),
                {k: v[index].to(device) for k, v in metadata.items()},
                drop,
                text,
            )
        loss = F.mse_loss(prediction.float(), target.float())
        optimizer_step(accelerator, optimizer, params, loss, clip_norm=1.0, ema=ema)
        done = step + 1
        if done % train.log_every_steps == 0 or done == train.max_steps:
            append_stats(out, {"step": done, "loss": loss.item(), "elapsed_s": time.perf_counter() - started})
            progress.set_postfix(loss=f"{loss.item():.4f}")
        if done % train.checkpoint_every_steps == 0 or done == train.max_steps:
            save(done)
    return out
