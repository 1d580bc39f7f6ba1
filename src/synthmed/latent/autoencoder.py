"""The latent space: a diffusers AutoencoderKL trained on the user's images (L1 + small KL), or loaded.

    AE_DIR/config.json        {"format": "synthmed-autoencoder-v1", "autoencoder": AutoencoderConfig}
    AE_DIR/model.safetensors  the weights
    AE_DIR/stats.jsonl, AE_DIR/checkpoints/step-XXXXXX/train_state.pt   (training only)

`load_autoencoder` also reads a plain diffusers AutoencoderKL folder (config.json +
diffusion_pytorch_model.safetensors, e.g. a Stable Diffusion `vae/` subfolder).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import save_file
from tqdm.auto import tqdm

from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.files import atomic_write_json, read_json
from synthmed.models.config import largest_group_count
from synthmed.models.weights import load_safetensors, load_state_dict_into, load_torch_file
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

log = logging.getLogger(__name__)

FORMAT = "synthmed-autoencoder-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

AE_PRESETS: dict[str, dict] = {
    "tiny": dict(block_out_channels=[8, 16], layers_per_block=1),  # tests: 2x downsampling
    "f4": dict(block_out_channels=[64, 128, 256], layers_per_block=2),  # 256 px -> 64x64 latents
    "f8": dict(block_out_channels=[64, 128, 256, 256], layers_per_block=2),  # 256 px -> 32x32 latents
}


class AutoencoderConfig(BaseModel):
    """Architecture of the KL autoencoder (Rombach et al. 2022) plus the latent scaling factor."""

    model_config = ConfigDict(extra="forbid")

    image_size_px: int = Field(gt=0)
    channels: Literal[1, 3] = 1
    latent_channels: int = Field(4, ge=1)
    block_out_channels: list[int] = Field(default_factory=lambda: [64, 128, 256, 256], min_length=1)
    layers_per_block: int = Field(2, ge=1)
    norm_num_groups: int = Field(0, ge=0, description="0 = largest of 32, 16, 8, ... dividing every width")
    scaling_factor: float = Field(1.0, gt=0, description="latents * scaling_factor have unit variance")

    @model_validator(mode="after")
    def _check(self) -> AutoencoderConfig:
        if self.image_size_px % self.downsample_factor:
            raise ValueError(
                f"image_size_px={self.image_size_px} must be divisible by the autoencoder's "
                f"downsampling factor {self.downsample_factor}."
            )
        if self.norm_num_groups == 0:
            self.norm_num_groups = largest_group_count(self.block_out_channels)
        return self

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size_px // self.downsample_factor


class AETrainConfig(BaseModel):
    """How to train the autoencoder."""

    model_config = ConfigDict(extra="forbid")

    split: str = "train"
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    kl_weight: float = Field(1e-6, ge=0)
    max_steps: int = Field(5000, ge=1)
    checkpoint_every_steps: int = Field(500, ge=1)
    log_every_steps: int = Field(25, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 0


def build_autoencoder(config: AutoencoderConfig):
    """A diffusers AutoencoderKL matching `config`."""
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=config.channels,
        out_channels=config.channels,
        latent_channels=config.latent_channels,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        sample_size=config.image_size_px,
        scaling_factor=config.scaling_factor,
    )


def save_autoencoder(folder: str | Path, *, vae, config: AutoencoderConfig) -> Path:
    """Write model.safetensors then config.json (the config last, so a folder with one is complete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in vae.state_dict().items()}
    tmp = folder / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS_NAME)
    atomic_write_json(folder / CONFIG_NAME, {"format": FORMAT, "autoencoder": config.model_dump()})
    return folder


def load_autoencoder(folder: str | Path, *, image_size_px: int | None = None):
    """(AutoencoderKL in eval mode, AutoencoderConfig) from a synthmed AE folder or a diffusers VAE folder."""
    from diffusers import AutoencoderKL

    folder = Path(folder).expanduser()
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --autoencoder expects a folder from `synthmed latent "
            f"train-autoencoder` (config.json + model.safetensors) or a diffusers AutoencoderKL "
            f"folder (config.json + diffusion_pytorch_model.safetensors)."
        )
    payload = read_json(path, fix="re-create it with `synthmed latent train-autoencoder`")
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        config = AutoencoderConfig.model_validate(payload["autoencoder"])
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found: the autoencoder folder {folder} is incomplete.")
        vae = build_autoencoder(config)
        fix = "the file is damaged or from another autoencoder: re-create it with `synthmed latent train-autoencoder`"
        load_state_dict_into(vae, load_safetensors(weights, fix=fix), path=weights, fix=fix)
        return vae.eval(), config
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"could not load an AutoencoderKL from {folder}: {exc}") from exc
    c = vae.config
    size = image_size_px or int(c.sample_size)
    config = AutoencoderConfig(
        image_size_px=size,
        channels=1 if c.in_channels == 1 else 3,
        latent_channels=c.latent_channels,
        block_out_channels=list(c.block_out_channels),
        layers_per_block=c.layers_per_block,
        norm_num_groups=c.norm_num_groups,
        scaling_factor=float(c.scaling_factor or 1.0),
    )
    return vae.eval(), config


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by the mean, so any dataset fits any autoencoder."""
    if images.shape[1] == channels:
        return images
    return images.repeat(1, channels, 1, 1) if images.shape[1] == 1 else images.mean(1, keepdim=True)


def dataset_images(
    dataset: str | Path, *, split: str, channels: int, size_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as float [-1, 1] images [N, channels, size, size] and class indices [N]."""
    pixels, labels, _ = load_arrays(dataset, split)
    images = match_channels(to_model_range(torch.from_numpy(pixels)), channels)
    if images.shape[-1] != size_px or images.shape[-2] != size_px:
        images = F.interpolate(images, size=(size_px, size_px), mode="bilinear", antialias=True).clamp(-1, 1)
    return images, torch.tensor(labels, dtype=torch.long)


@torch.no_grad()
def latent_scaling_factor(vae, images: torch.Tensor, *, batch_size: int = 16, max_images: int = 256) -> float:
    """1 / std of the latent means over up to `max_images` images (unit-variance latents for diffusion)."""
    means = [
        vae.encode(images[i : i + batch_size]).latent_dist.mean
        for i in range(0, min(len(images), max_images), batch_size)
    ]
    return float(1.0 / torch.cat(means).float().std().clamp_min(1e-6))


@releases_accelerator
def train_autoencoder(
    dataset: str | Path, *, out: str | Path, config: AutoencoderConfig, train: AETrainConfig, resume: bool = False
) -> Path:
    """Train an AutoencoderKL on `dataset` with L1 reconstruction + `kl_weight` * KL; returns AE_DIR."""
    out = Path(out).expanduser()
    if (out / CONFIG_NAME).is_file() and not resume:
        raise FileExistsError(
            f"{out} already holds an autoencoder; pass --resume to continue training it or choose a new --out."
        )
    accelerator = make_accelerator(train.mixed_precision)
    images, _ = dataset_images(dataset, split=train.split, channels=config.channels, size_px=config.image_size_px)
    vae = build_autoencoder(config)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=train.learning_rate)
    generator = torch.Generator().manual_seed(train.seed)
    start_step = 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_torch_file(ckpt / TRAIN_STATE_NAME, fix=f"delete the damaged checkpoint {ckpt} and resume again")
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start_step = int(state["step"])
        log.info("resumed autoencoder training from %s (step %d)", ckpt, start_step)
    vae, optimizer = accelerator.prepare(vae, optimizer)
    device = accelerator.device
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "train_config.json", {"train": train.model_dump(), "dataset": str(Path(dataset).resolve())})

    def save(step: int) -> None:
        model = accelerator.unwrap_model(model_ref)
        atomic_torch_save(
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
            },
            step_dir(out, step) / TRAIN_STATE_NAME,
        )
        prune_checkpoints(out, keep=2)
        model.eval()
        scaled = config.model_copy(update={"scaling_factor": latent_scaling_factor(model, images.to(device))})
        model.train()
        save_autoencoder(out, vae=model, config=scaled)

    model_ref = vae
    vae.train()
    started = time.perf_counter()
    progress = tqdm(
        range(start_step, train.max_steps), initial=start_step, total=train.max_steps, desc="autoencoder", unit="step"
    )
    for step in progress:
        batch = images[torch.randint(len(images), (train.batch_size,), generator=generator)].to(device)
        with accelerator.autocast():
            posterior = vae.encode(batch).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(device)
            recon = vae.decode(z).sample
        l1 = F.l1_loss(recon.float(), batch)
        kl = posterior.kl().mean() / batch[0].numel()
        loss = l1 + train.kl_weight * kl
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done % train.log_every_steps == 0 or done == train.max_steps:
            append_stats(
                out,
                {
                    "step": done,
                    "loss": loss.item(),
                    "l1": l1.item(),
                    "kl": kl.item(),
                    "elapsed_s": time.perf_counter() - started,
                },
            )
            progress.set_postfix(l1=f"{l1.item():.4f}")
        if done % train.checkpoint_every_steps == 0 or done == train.max_steps:
            save(done)
    return out
