"""Any image set (prepared dataset split or synthetic folder) as uint8 arrays for evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from synthmed.data.manifest import load_image_set


@dataclass(frozen=True)
class ImageArrays:
    """Images `pixels` uint8 [N, C, H, W], class indices `labels` [N], `classes` names, `ids` [N]."""

    pixels: np.ndarray
    labels: np.ndarray
    classes: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> ImageArrays:
        """The rows where boolean `mask` (or integer index array) selects."""
        index = np.flatnonzero(mask) if mask.dtype == bool else mask
        return ImageArrays(self.pixels[index], self.labels[index], self.classes, [self.ids[i] for i in index])


def load_image_arrays(
    folder: str | Path,
    *,
    split: str | None = None,
    classes: list[str] | None = None,
    size_px: int | None = None,
    channels: int | None = None,
    limit_per_class: int | None = None,
) -> ImageArrays:
    """Read an image set into memory, resized (bilinear) to `size_px` and converted to `channels`.

    `classes` fixes the label order (pass the real dataset's classes so synthetic labels align);
    rows whose label is not in `classes` raise a ValueError naming them. Images come in image-id order, whatever
    the manifest's row order.
    """
    frame = load_image_set(folder, split=split)
    if frame.empty:
        raise ValueError(f"{folder} has no images{f' in split {split!r}' if split else ''}.")
    classes = list(classes) if classes is not None else sorted(frame["label"].astype(str).unique())
    unknown = sorted(set(frame["label"].astype(str)) - set(classes))
    if unknown:
        raise ValueError(f"{folder}: labels {unknown} are not among the classes {classes}.")
    # Ordered by image id, not by manifest row: a set listed in another order gives the same arrays (and so the
    # same classifiers, thresholds and figures downstream).
    frame = frame.sort_values("image_id", key=lambda ids: ids.astype(str), kind="stable", ignore_index=True)
    if limit_per_class is not None:
        frame = frame.groupby("label", sort=False).head(limit_per_class).reset_index(drop=True)
    mode = None if channels is None else ("L" if channels == 1 else "RGB")
    pixels = np.stack([read_image(p, mode, size_px) for p in frame["abs_path"]])
    labels = np.array([classes.index(str(lab)) for lab in frame["label"]], dtype=np.int64)
    return ImageArrays(pixels, labels, classes, [str(i) for i in frame["image_id"]])


def read_image(path: str | Path, mode: str | None = None, size_px: int | None = None) -> np.ndarray:
    """One image file as uint8 [C, H, W] in `mode` ("L", "RGB" or None = as stored), resized to `size_px`.

    16-bit grey files keep their high byte, so 8-bit data stored as x * 257 (synthmed sample) or x << 8 reads back.

    A missing, truncated or non-image file raises a ValueError that names it and says how to fix it.
    """
    try:
        with Image.open(path) as img:
            if img.mode.startswith("I;16") or img.mode == "I":
                # 16-bit grey: keep the high byte (x * 257 and x << 8 both map back to x); convert("L") clips.
                wide = np.floor(np.asarray(img, dtype=np.float64) / 256.0)
                img = Image.fromarray(np.clip(wide, 0, 255).astype(np.uint8), mode="L")
            if img.mode not in ("L", "RGB"):
                img = img.convert("RGB" if mode == "RGB" else "L")
            if mode is not None:
                img = img.convert(mode)
            if size_px is not None and img.size != (size_px, size_px):
                img = img.resize((size_px, size_px), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for damaged files
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(
                f"{path} not found: the manifest lists it; restore the file or remove its row from manifest.csv."
            ) from exc
        raise ValueError(
            f"{path} is not a readable image ({type(exc).__name__}: {exc}); replace or re-create "
            f"it, or remove its row from manifest.csv."
        ) from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
