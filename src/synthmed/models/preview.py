"""Preview grids (one row per class) written during training and after sampling."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthmed.data.dataset import from_model_range
from synthmed.files import atomic_write_bytes
from synthmed.models.interface import DenoisingModel
from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler


def grid_image(rows: list[np.ndarray], *, pad_px: int = 2) -> Image.Image:
    """Tile rows of uint8 images ([N, C, H, W] each, same C/H/W) into one grey or RGB picture."""
    channels, height, width = rows[0].shape[1:]
    ncol = max(len(r) for r in rows)
    canvas = np.zeros((len(rows) * (height + pad_px) + pad_px, ncol * (width + pad_px) + pad_px, channels), np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = pad_px + i * (height + pad_px), pad_px + j * (width + pad_px)
            canvas[y : y + height, x : x + width] = image.transpose(1, 2, 0)
    return Image.fromarray(canvas[:, :, 0] if channels == 1 else canvas)


def save_png_atomic(image: Image.Image, path: str | Path) -> Path:
    """Write a PIL image as PNG atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def class_grid(
    model: DenoisingModel,
    *,
    per_class: int,
    steps: int,
    guidance_scale: float = 1.0,
    sampler: str = "dpmpp",
    seed: int = 0,
) -> Image.Image:
    """Sample `per_class` images of every class (seeds seed..seed+per_class-1) and tile one row per class."""
    rows = []
    was_training = model.network.training
    model.network.eval()
    device = next(model.network.parameters()).device
    for label in range(len(model.class_names)):
        images = denoise(
            model,
            make_scheduler(sampler, model.scheduler),
            condition=model.class_condition(torch.full((per_class,), label)),
            generators=[torch.Generator().manual_seed(seed + k) for k in range(per_class)],
            steps=steps,
            guidance_scale=guidance_scale,
            stochastic=SAMPLERS[sampler].stochastic,
            device=device,
        )
        rows.append(from_model_range(images).numpy())
    model.network.train(was_training)
    return grid_image(rows)
