"""The one encoding chain every served image goes through, whatever side or file format it comes from.

1. Decode upright and scale by the file's nominal bit depth (8-bit / 255, 16-bit / 65535): no per-image
   min-max stretch, so a 16-bit copy of an 8-bit image serves the same pixels.
2. Grey stays grey: an RGB file whose channels differ by at most GREY_TOLERANCE is averaged to one channel
   (JPEG colour tints go). The study is grey unless most images are in colour; then grey images are
   served as exact grey in RGB.
3. Centre-crop to a square and resample (Lanczos, in floating point) to the served size. With `match`, every
   image is first resampled to the common size (the smallest source side in the study), then to at most
   half of it, so both sides pass the same low-pass path; intensities are stretched per image between the
   0.5th and 99.5th percentiles, the same for both sides.
4. Quantise to 8 bits and write an uncompressed PNG with only IHDR, IDAT and IEND.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

GREY_TOLERANCE = 12 / 255
MAX_SIZE_PX = 1024
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def to_unit(img: Image.Image) -> np.ndarray:
    """Float32 pixels in [0, 1] (H x W, or H x W x 3 for colour), scaled by the nominal bit depth."""
    img = ImageOps.exif_transpose(img)
    if img.mode in SIXTEEN_BIT_MODES:
        # The high byte, as 8 bits: both 16-bit conventions for 8-bit data (x * 257 and x << 8) map back to x.
        return np.clip(np.floor(np.asarray(img, dtype=np.float64) / 256.0) / 255.0, 0.0, 1.0).astype(np.float32)
    if img.mode == "F":
        array = np.asarray(img, dtype=np.float32)
        return np.clip(array if array.max() <= 1.0 else array / 255.0, 0.0, 1.0)
    if img.mode in ("1", "L", "LA", "P") and (img.mode != "P" or _palette_is_grey(img)):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _palette_is_grey(img: Image.Image) -> bool:
    return is_grey(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)


def is_grey(pixels: np.ndarray) -> bool:
    """True for one channel, or three channels that never differ by more than GREY_TOLERANCE."""
    return pixels.ndim == 2 or float(np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max()) <= GREY_TOLERANCE


def load(path: str) -> np.ndarray:
    """The file's pixels through steps 1-2 (grey images as H x W)."""
    with Image.open(path) as img:
        pixels = to_unit(img)
    return pixels.mean(axis=2) if pixels.ndim == 3 and is_grey(pixels) else pixels


def _square(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return pixels[top : top + side, left : left + side]


def _resize(pixels: np.ndarray, size_px: int) -> np.ndarray:
    if pixels.shape[0] == size_px:
        return pixels
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32)).resize(
                (size_px, size_px), Image.Resampling.LANCZOS
            )
        )
        for c in range(planes.shape[2])
    ]
    return np.clip(np.stack(out, axis=2) if pixels.ndim == 3 else out[0], 0.0, 1.0)


def _stretch(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, [0.5, 99.5])
    return np.clip((pixels - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(pixels)


@dataclass(frozen=True)
class EncodingPlan:
    """How every image of one study is encoded (decided once from all of them)."""

    size_px: int
    mode: str  # "L" or "RGB"
    match: bool = False
    common_px: int | None = None


def plan_encoding(sides_px: list[int], colour: list[bool], *, size_px: int | None, match: bool) -> EncodingPlan:
    """The served size and mode from every image's square side and colourness."""
    smallest = min(sides_px)
    mode = "RGB" if sum(colour) * 2 > len(colour) else "L"
    if mode == "L" and any(colour):
        log.warning("%d of %d images are in colour; they are served in grey like the rest", sum(colour), len(colour))
    if not match:
        return EncodingPlan(size_px=size_px or min(MAX_SIZE_PX, smallest), mode=mode)
    ceiling = max(8, smallest // 2)
    if size_px is not None and size_px > ceiling:
        raise ValueError(
            f"--match serves at most half the smallest source side ({smallest} px): ask for "
            f"--size-px {ceiling} or less, or leave --size-px out."
        )
    return EncodingPlan(size_px=size_px or min(MAX_SIZE_PX, ceiling), mode=mode, match=True, common_px=smallest)


def encode(pixels: np.ndarray, plan: EncodingPlan) -> bytes:
    """Steps 3-4 for one image loaded with `load`."""
    if plan.mode == "L" and pixels.ndim == 3:
        pixels = pixels.mean(axis=2)
    if plan.mode == "RGB" and pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = _square(pixels)
    if plan.match and plan.common_px is not None:
        pixels = _stretch(_resize(pixels, plan.common_px))
    pixels = _resize(pixels, plan.size_px)
    clean = Image.fromarray(np.round(pixels * 255.0).astype(np.uint8))  # 2-D -> "L", H x W x 3 -> "RGB"
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", compress_level=0, optimize=False)
    return buffer.getvalue()


def encode_blinded(img: Image.Image, *, size_px: int, mode: str) -> bytes:
    """One image through the chain without `match` (for a single file; studies use `plan_encoding`)."""
    pixels = to_unit(img)
    if pixels.ndim == 3 and is_grey(pixels):
        pixels = pixels.mean(axis=2)
    return encode(pixels, EncodingPlan(size_px=size_px, mode=mode))
