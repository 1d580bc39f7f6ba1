"""Planted failures that prove the evaluation instruments: image degradations and transformed copies.

Used by the tests and by `bench/metric_validity.py` / `bench/copy_detection.py`: a fidelity metric
must react to degraded real images, a copy detector must flag transformed training images, and both
must pass clean held-out real images. All functions take and return uint8 `[N, C, H, W]` arrays and
draw randomness only from the generator they are given.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from synthmed.evaluate.copy_fit import warp


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blur(pixels: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of every channel with `sigma_px` (reflected borders)."""
    return _to_uint8(
        ndimage.gaussian_filter(pixels.astype(np.float32), sigma=(0, 0, sigma_px, sigma_px), mode="reflect")
    )


def add_noise(pixels: np.ndarray, sigma_grey: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of `sigma_grey` grey levels (0-255 scale)."""
    return _to_uint8(pixels.astype(np.float32) + rng.normal(0.0, sigma_grey, pixels.shape))


def contrast(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Scale each image's deviation from its own mean by `factor`."""
    x = pixels.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _to_uint8(mean + factor * (x - mean))


def gamma(pixels: np.ndarray, value: float) -> np.ndarray:
    """Grey-level gamma curve 255 * (x / 255) ** value."""
    return _to_uint8(255.0 * (pixels.astype(np.float32) / 255.0) ** value)


def brightness(pixels: np.ndarray, offset_grey: float) -> np.ndarray:
    """Add `offset_grey` grey levels."""
    return _to_uint8(pixels.astype(np.float32) + offset_grey)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode every image as JPEG at `quality` (PIL, 4:2:0 for RGB)."""
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out[i] = decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)
    return out


def down_up(pixels: np.ndarray, factor: int = 2) -> np.ndarray:
    """Downsample by `factor` (antialiased bilinear) and upsample back (bilinear): resampling loss."""
    x = torch.from_numpy(pixels).float()
    size = pixels.shape[-1]
    small = F.interpolate(
        x, size=(size // factor, size // factor), mode="bilinear", antialias=True, align_corners=False
    )
    return _to_uint8(F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False).numpy())


def quantise(pixels: np.ndarray, levels: int) -> np.ndarray:
    """Keep `levels` evenly spaced grey levels."""
    step = 255.0 / (levels - 1)
    return _to_uint8(np.rint(pixels.astype(np.float32) / step) * step)


def affine(
    pixels: np.ndarray,
    *,
    angle_deg: np.ndarray,
    scale: np.ndarray,
    shift_px: np.ndarray,
    flip: np.ndarray,
    border: str = "reflection",
) -> np.ndarray:
    """Per-image rotation (degrees), zoom (scale > 1 crops in), shift `[N, 2]` (dy, dx in pixels) and horizontal flip.

    Borders are filled by reflection (a crop of the scene rather than black corners), or black (`border="zeros"`).
    """
    moved = warp(
        torch.from_numpy(pixels).float(),
        angle_deg=torch.as_tensor(angle_deg, dtype=torch.float64),
        zoom=torch.as_tensor(scale, dtype=torch.float64),
        flip=torch.as_tensor(flip, dtype=torch.bool),
        shift_px=torch.as_tensor(shift_px, dtype=torch.float64),
        border=border,
    )
    return _to_uint8(moved.numpy())


Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# The metric-validity ladder (issue "Evidence you can trust"): name -> (family, strength rank 0/1/2, function).
DEGRADATION_LADDER: dict[str, tuple[str, int, Degradation]] = {
    "blur 0.5 px": ("blur", 0, lambda p, r: blur(p, 0.5)),
    "blur 1 px": ("blur", 1, lambda p, r: blur(p, 1.0)),
    "blur 1.5 px": ("blur", 2, lambda p, r: blur(p, 1.5)),
    "noise 5": ("noise", 0, lambda p, r: add_noise(p, 5, r)),
    "noise 10": ("noise", 1, lambda p, r: add_noise(p, 10, r)),
    "noise 20": ("noise", 2, lambda p, r: add_noise(p, 20, r)),
    "contrast 0.9": ("contrast", 0, lambda p, r: contrast(p, 0.9)),
    "contrast 0.8": ("contrast", 1, lambda p, r: contrast(p, 0.8)),
    "contrast 0.7": ("contrast", 2, lambda p, r: contrast(p, 0.7)),
    "gamma 0.8": ("gamma", 1, lambda p, r: gamma(p, 0.8)),
    "gamma 1.25": ("gamma", 1, lambda p, r: gamma(p, 1.25)),
    "jpeg q30": ("jpeg", 1, lambda p, r: jpeg(p, 30)),
    "down-up 2x": ("resampling", 1, lambda p, r: down_up(p, 2)),
    "16 grey levels": ("quantisation", 1, lambda p, r: quantise(p, 16)),
}


def random_copy_transforms(pixels: np.ndarray, rng: np.random.Generator, *, family: str) -> np.ndarray:
    """Transformed copies drawn at random from the ranges people apply to images.

    Families: `flip`, `rotate` (up to 10 degrees), `zoom` (crop in up to 15%), `shift` (up to 8 px at 64 px,
    scaled with the image, borders reflected), `shift_black` (4-8 px, what the shift uncovers black),
    `intensity` (gamma 0.7-1.4, contrast 0.75-1.25, brightness +-20), `blur` (0.5-1.5 px),
    `noise` (3-12 grey levels), `jpeg` (quality 30-80), `resample` (down-up 2x), `combined` (a random geometric
    transform of every kind at once, then intensity, then one of blur/noise/JPEG).
    """
    n, size = len(pixels), pixels.shape[-1]
    shift_max = 8.0 * size / 64
    none = np.zeros(n)
    geometric: dict[str, Any] = {
        "angle_deg": none,
        "scale": np.ones(n),
        "shift_px": np.zeros((n, 2)),
        "flip": np.zeros(n, bool),
    }
    if family == "flip":
        return affine(pixels, **(geometric | {"flip": np.ones(n, bool)}))
    if family == "rotate":
        return affine(pixels, **(geometric | {"angle_deg": rng.uniform(2, 10, n) * rng.choice([-1, 1], n)}))
    if family == "zoom":
        return affine(pixels, **(geometric | {"scale": 1.0 / (1.0 - rng.uniform(0.04, 0.15, n))}))
    if family == "shift":
        return affine(pixels, **(geometric | {"shift_px": rng.uniform(-shift_max, shift_max, (n, 2))}))
    if family == "shift_black":
        shift = rng.uniform(shift_max / 2, shift_max, (n, 2)) * rng.choice([-1, 1], (n, 2))
        return affine(pixels, **(geometric | {"shift_px": shift}), border="zeros")
    if family == "intensity":
        return _intensity(pixels, rng)
    if family == "blur":
        return np.concatenate([blur(p[None], s) for p, s in zip(pixels, rng.uniform(0.5, 1.5, n))])
    if family == "noise":
        return np.concatenate([add_noise(p[None], s, rng) for p, s in zip(pixels, rng.uniform(3, 12, n))])
    if family == "jpeg":
        return np.concatenate([jpeg(p[None], int(q)) for p, q in zip(pixels, rng.integers(30, 81, n))])
    if family == "resample":
        return down_up(pixels, 2)
    if family == "combined":
        moved = affine(
            pixels,
            angle_deg=rng.uniform(-10, 10, n),
            scale=1.0 / (1.0 - rng.uniform(0, 0.15, n)),
            shift_px=rng.uniform(-shift_max, shift_max, (n, 2)),
            flip=rng.random(n) < 0.5,
        )
        moved = _intensity(moved, rng)
        last = rng.integers(0, 3, n)
        out = moved.copy()
        for i in range(n):
            one = moved[i : i + 1]
            out[i] = (
                blur(one, rng.uniform(0.5, 1.0))
                if last[i] == 0
                else add_noise(one, rng.uniform(3, 8), rng)
                if last[i] == 1
                else jpeg(one, int(rng.integers(40, 81)))
            )[0]
        return out
    raise ValueError(f"unknown copy transform family {family!r}; choose from {COPY_FAMILIES}.")


def _intensity(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(pixels)
    out = np.empty_like(pixels)
    for i, (g, c, b) in enumerate(zip(rng.uniform(0.7, 1.4, n), rng.uniform(0.75, 1.25, n), rng.uniform(-20, 20, n))):
        out[i] = brightness(contrast(gamma(pixels[i : i + 1], g), c), b)[0]
    return out


COPY_FAMILIES = (
    "flip",
    "rotate",
    "zoom",
    "shift",
    "shift_black",
    "intensity",
    "blur",
    "noise",
    "jpeg",
    "resample",
    "combined",
)
