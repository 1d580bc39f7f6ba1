"""Pixel conversions shared by every reader: PIL modes, HU windows, intensity scaling, square resize."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

WINDOWS: dict[str, tuple[float, float]] = {
    # name: (width, level) in Hounsfield units
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "brain": (80.0, 40.0),
    "bone": (2000.0, 300.0),
}

Fit = Literal["pad", "crop"]
Scaling = Literal["minmax", "percentile"]
PERCENTILES = (0.5, 99.5)
GREY_TOLERANCE = 6  # channel differences up to this many grey levels count as grey (JPEG chroma noise)
GREY_MAX_COLOUR_FRACTION = 0.002  # an image is grey when fewer pixels than this differ in colour


def parse_window(text: str | None) -> tuple[float, float] | None:
    """`lung`/`mediastinum`/`brain`/`bone` or `W,L` (e.g. `400,40`) -> (width, level); None -> None."""
    if text is None or text == "":
        return None
    if text in WINDOWS:
        return WINDOWS[text]
    try:
        width, level = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"window {text!r} is neither a named window ({', '.join(WINDOWS)}) nor 'WIDTH,LEVEL' such as '400,40'."
        ) from None
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width} in {text!r}.")
    return width, level


def apply_window(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Linear window (width, level) -> uint8: level - width/2 maps to 0, level + width/2 to 255."""
    width, level = window
    low = level - width / 2.0
    scaled = (values.astype(np.float32) - low) / width
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def scale_to_uint8(
    values: np.ndarray, *, scaling: Scaling = "minmax", percentiles: tuple[float, float] = PERCENTILES
) -> np.ndarray:
    """Scale any numeric array to uint8 per image: min-max, or between two percentiles (clipped outside)."""
    values = values.astype(np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    if scaling == "percentile":
        low, high = np.percentile(finite, percentiles)
    else:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def pil_to_array(img: Image.Image, *, scaling: Scaling = "minmax") -> np.ndarray:
    """A PIL image in any mode -> uint8 HxW (grey) or HxWx3 (colour).

    1/L/P/RGB/CMYK/YCbCr are converted by PIL; LA/RGBA/PA are composited onto black (air is dark);
    16-bit and 32-bit integer or float modes (I;16, I;16B, I, F) are scaled per image with
    `scaling` (min-max by default, so a 12-bit image in a 16-bit file keeps its full contrast),
    never clipped to 8 bits.
    """
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        return scale_to_uint8(np.asarray(img), scaling=scaling)
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in ("LA", "PA", "RGBA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:4] / 255.0)
        array = (rgb + 0.5).astype(np.uint8)
        return array[..., 0] if mode in ("LA", "La") else array
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def is_grey(array: np.ndarray) -> bool:
    """True for HxW arrays and for HxWx3 arrays whose channels are equal (within JPEG chroma noise)."""
    if array.ndim == 2:
        return True
    red, green, blue = (array[..., k].astype(np.int16) for k in range(3))
    colour = (
        (np.abs(red - green) > GREY_TOLERANCE)
        | (np.abs(green - blue) > GREY_TOLERANCE)
        | (np.abs(red - blue) > GREY_TOLERANCE)
    )
    return float(colour.mean()) < GREY_MAX_COLOUR_FRACTION


def to_grey(array: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxW by ITU-R 601 luma (PIL's `convert('L')`); HxW unchanged."""
    if array.ndim == 2:
        return array
    return np.asarray(Image.fromarray(array, "RGB").convert("L"), dtype=np.uint8)


def to_rgb(array: np.ndarray) -> np.ndarray:
    """HxW -> HxWx3 by repetition; HxWx3 unchanged."""
    return array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=-1)


def fit_square(array: np.ndarray, *, size_px: int, fit: Fit = "pad") -> np.ndarray:
    """Make a uint8 image square keeping its aspect ratio, then resize to `size_px` (Lanczos / box).

    `pad` (the default) adds black borders on the short side, so no anatomy is cut away;
    `crop` takes the centred square of the short side.
    """
    height, width = array.shape[:2]
    if fit == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        array = array[top : top + side, left : left + side]
    elif height != width:
        side = max(height, width)
        square = np.zeros((side, side) + array.shape[2:], dtype=array.dtype)
        top, left = (side - height) // 2, (side - width) // 2
        square[top : top + height, left : left + width] = array
        array = square
    if array.shape[0] == size_px:
        return np.ascontiguousarray(array)
    img = Image.fromarray(array)
    resample = Image.Resampling.LANCZOS if array.shape[0] > size_px else Image.Resampling.BICUBIC
    return np.asarray(
        img.resize((size_px, size_px), resample, reducing_gap=3.0 if array.shape[0] > size_px else None), dtype=np.uint8
    )
