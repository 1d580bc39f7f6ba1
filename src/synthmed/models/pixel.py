"""The pixel family: a class-conditional UNet on images, as a `DenoisingModel` (loss, prediction, folder)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from synthmed.models.config import DiffusionModelConfig
from synthmed.models.interface import ALL_ROWS, Condition, DenoisingModel, seeded
from synthmed.models.objective import draw_noise, drop_labels, loss_on_rows
from synthmed.models.sampling import default_sampler
from synthmed.models.unet import build_scheduler, build_unet, load_model_folder, publish_model_folder


class PixelDiffusion(DenoisingModel):
    """UNet2DModel + DDPM noise schedule on [-1, 1] images; conditions: {"class_labels": [B]}.

    Training batches are (images [B, C, H, W] in [-1, 1], class indices [B]); `hflip` flips each
    image with probability 1/2; labels are dropped to the null class with `class_dropout_prob` (CFG).
    """

    def __init__(self, config: DiffusionModelConfig, *, unet=None, scheduler=None, snr_gamma=None, hflip=False):
        self.config = config
        self.network = unet if unet is not None else build_unet(config)
        self.scheduler = scheduler if scheduler is not None else build_scheduler(config)
        self.snr_gamma = snr_gamma
        self.hflip = hflip
        self.extra: dict = {}  # written into the model folder's config.json (dataset name, ...)
        self.grid_per_class, self.grid_steps = 8, 20
        self.sample_shape = (config.in_channels, config.image_size_px, config.image_size_px)
        self.class_names = config.class_names or [str(i) for i in range(config.num_classes)]

    @classmethod
    def create(cls, config: DiffusionModelConfig, *, seed: int, **options) -> PixelDiffusion:
        """A freshly initialised model (weights from `seed`; torch's global RNG left untouched)."""
        with seeded(seed):
            unet = build_unet(config)
        return cls(config, unet=unet.train(), **options)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> PixelDiffusion:
        """The model of a model folder written by `save` (eval mode, on `device`)."""
        unet, config, scheduler = load_model_folder(folder, device=device)
        return cls(config, unet=unet, scheduler=scheduler)

    def loss(self, batch, *, generator: torch.Generator, rows: slice = ALL_ROWS) -> dict[str, torch.Tensor]:
        clean, labels = batch
        if self.hflip:
            flip = torch.rand(len(clean), generator=generator) < 0.5
            clean = torch.where(flip.view(-1, 1, 1, 1), clean.flip(-1), clean)
        cond = drop_labels(
            labels, null_class=self.config.null_class, prob=self.config.class_dropout_prob, generator=generator
        )
        draw = draw_noise(clean.shape, scheduler=self.scheduler, generator=generator)
        return loss_on_rows(self, clean, {"class_labels": cond}, draw=draw, rows=rows, snr_gamma=self.snr_gamma)

    def save(self, folder: Path, *, step: int) -> Path:
        return publish_model_folder(
            folder, unet=self.network, config=self.config, extra={"step": step, "weights": "ema", **self.extra}
        )

    def grid(self, *, seed: int) -> Image.Image | None:
        from synthmed.models.preview import class_grid

        sampler = default_sampler(self.scheduler)
        return class_grid(self, per_class=self.grid_per_class, steps=self.grid_steps, seed=seed, sampler=sampler)

    def predict(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        return self.network(x, t, class_labels=condition["class_labels"]).sample

    def null_condition(self, condition: Condition) -> Condition:
        return {"class_labels": torch.full_like(condition["class_labels"], self.config.null_class)}

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-1, 1)

    def class_condition(self, labels: torch.Tensor) -> Condition:
        """The condition batch of class indices `labels`."""
        return {"class_labels": labels}
