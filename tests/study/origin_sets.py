"""Image folders whose real and synthetic sides show the same kind of content and differ only by file origin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def anatomy(rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A smooth random 'anatomy' with pixel-scale texture, made natively at `size_px` (as a generator or a
    detector would), floats in roughly [0.05, 0.95] with a different range per image."""
    field = ndimage.gaussian_filter(rng.normal(0, 1, (size_px, size_px)), sigma=size_px / 16)
    field = (field - field.min()) / (np.ptp(field) or 1.0)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size_px, size_px)), sigma=0.7) * 0.08
    low, high = rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)
    return np.clip(low + (high - low) * field + texture, 0, 1)


def write_side(folder: Path, kind: str, count: int, *, seed: int) -> Path:
    """`count` images per class of one origin `kind` under folder/normal and folder/pneumonia."""
    rng = np.random.default_rng(seed)
    for label in ("normal", "pneumonia"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            pixels = anatomy(rng, 32 if kind.endswith("_32") else 64)
            target = folder / label / f"{kind}_{k}"
            if kind in ("png8_64", "png8_32"):
                Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(target.with_suffix(".png"))
            elif kind == "png16_64_stretched":  # a generator that min-max scales into the full 16-bit range
                stretched = (pixels - pixels.min()) / np.ptp(pixels)
                Image.fromarray(np.round(stretched * 65535).astype(np.uint16)).save(target.with_suffix(".png"))
            elif kind == "png16_64":  # the same range as 8-bit, just stored in 16 bits
                Image.fromarray(np.round(pixels * 255).astype(np.uint16) * 257).save(target.with_suffix(".png"))
            elif kind == "jpeg_64":
                Image.fromarray(np.round(pixels * 255).astype(np.uint8)).convert("RGB").save(
                    target.with_suffix(".jpg"), quality=70
                )
            else:
                raise ValueError(kind)
    return folder


def origin_pair(root: Path, real_kind: str, synthetic_kind: str, *, count: int = 10) -> tuple[Path, Path]:
    """(real, synthetic) folders: same generator, different seeds, different origin."""
    return (
        write_side(root / "real", real_kind, count, seed=1),
        write_side(root / "synthetic", synthetic_kind, count, seed=2),
    )
