"""The latent space: a diffusers AutoencoderKL trained on the user's images (L1 + small KL), or loaded.

    AE_DIR/config.json        {"format": "synthmed-autoencoder-v1", "autoencoder": AutoencoderConfig}
    AE_DIR/model.safetensors  the weights

`train_autoencoder` writes the shared run folder (synthmed.train.run_files) with AE_DIR = RUN/model;
`load_autoencoder` takes RUN or AE_DIR (older synthmed wrote AE_DIR itself as the run folder).

`load_autoencoder` also reads a plain diffusers AutoencoderKL folder (config.json +
diffusion_pytorch_model.safetensors, e.g. a Stable Diffusion `vae/` subfolder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.data.dataset import from_model_range, load_arrays, to_model_range
from synthmed.files import atomic_write_json, publish_folder, read_json
from synthmed.models.config import largest_group_count
from synthmed.models.interface import ALL_ROWS, TrainableModel, seeded
from synthmed.models.preview import grid_image
from synthmed.models.weights import load_weights, save_weights
from synthmed.train.config import LoopConfig
from synthmed.train.fit import TrainingData, fit

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


class AETrainConfig(LoopConfig):
    """An autoencoder run (RUN/config.json): the loop's settings plus data, architecture and KL weight."""

    dataset: str = Field(description="prepared dataset folder")
    autoencoder: AutoencoderConfig
    split: str = "train"
    kl_weight: float = Field(1e-6, ge=0)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    ema_max_decay: float = Field(0.0, ge=0, lt=1, description="0 = no EMA (the autoencoder's default)")
    max_steps: int | None = Field(5000, ge=1)
    checkpoint_every_steps: int = Field(500, ge=1)
    log_every_steps: int = Field(25, ge=1)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "no"


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
    """Write model.safetensors (fsynced) then config.json; callers publish `folder` atomically (publish_folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / WEIGHTS_NAME, vae, file_format=FORMAT)
    atomic_write_json(folder / CONFIG_NAME, {"format": FORMAT, "autoencoder": config.model_dump()})
    return folder


def load_autoencoder(folder: str | Path, *, image_size_px: int | None = None):
    """(AutoencoderKL in eval mode, AutoencoderConfig) from a synthmed AE folder or a diffusers VAE folder."""
    from diffusers import AutoencoderKL

    folder = Path(folder).expanduser()
    if (folder / "model" / CONFIG_NAME).is_file():  # a training run folder
        folder = folder / "model"
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
        load_weights(vae, weights, fix=fix)
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


class Reconstruction(torch.nn.Module):
    """encode -> sample the posterior with given noise -> decode, as one forward (DDP and autocast see it)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(images).latent_dist
        recon = self.vae.decode(posterior.mean + posterior.std * noise.to(posterior.mean.dtype)).sample
        return recon, posterior.kl()


class AutoencoderModel(TrainableModel):
    """The autoencoder as a `TrainableModel`: L1 reconstruction + `kl_weight` * KL (Rombach et al. 2022).

    Training batches are images in [-1, 1]; the saved folder's scaling_factor is measured on
    `reference` (up to 256 training images) so latents have unit variance.
    """

    def __init__(self, config: AutoencoderConfig, *, seed: int, kl_weight: float, reference: torch.Tensor):
        with seeded(seed):
            self.network = Reconstruction(build_autoencoder(config))
        self.config, self.kl_weight, self.reference = config, kl_weight, reference[:256]

    def loss(self, batch, *, generator: torch.Generator, rows: slice = ALL_ROWS) -> dict[str, torch.Tensor]:
        device = next(self.network.parameters()).device
        size = self.config.latent_size
        noise = torch.randn((len(batch), self.config.latent_channels, size, size), generator=generator)
        images = batch[rows].to(device)
        recon, kl = self.network(images, noise[rows].to(device))
        l1 = F.l1_loss(recon.float(), images)
        kl = kl.float().mean() / images[0].numel()
        return {"loss": l1 + self.kl_weight * kl, "l1": l1, "kl": kl}

    def save(self, folder: Path, *, step: int) -> Path:
        vae = self.network.vae
        was_training = vae.training
        vae.eval()
        device = next(vae.parameters()).device
        scaled = self.config.model_copy(
            update={"scaling_factor": latent_scaling_factor(vae, self.reference.to(device))}
        )
        vae.train(was_training)
        return publish_folder(folder, lambda tmp: save_autoencoder(tmp, vae=vae, config=scaled))

    @torch.no_grad()
    def grid(self, *, seed: int) -> Image.Image | None:
        """Top row: up to 8 training images; bottom row: their reconstructions (posterior means)."""
        vae, images = self.network.vae, self.reference[:8]
        recon = vae.decode(vae.encode(images.to(next(vae.parameters()).device)).latent_dist.mean).sample.cpu()
        return grid_image([from_model_range(images).numpy(), from_model_range(recon.float().clamp(-1, 1)).numpy()])


def train_autoencoder(config: AETrainConfig, *, out: str | Path, resume: bool = False) -> Path:
    """Train an AutoencoderKL on `config.dataset` with the one loop; returns RUN (its model/ is the AE folder)."""
    out = Path(out).expanduser()
    ae = config.autoencoder
    images, labels = dataset_images(config.dataset, split=config.split, channels=ae.channels, size_px=ae.image_size_px)
    model = AutoencoderModel(ae, seed=config.seed, kl_weight=config.kl_weight, reference=images)
    data = TrainingData(labels=labels.numpy().astype(np.int64), fetch=lambda index: images[index])
    fit(model, data, config, run_dir=out, resume=resume)
    return out
