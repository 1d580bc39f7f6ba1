"""Per-class sample grids of real and synthetic images (PNG bytes) for the report, built with PIL."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.data.manifest import read_dataset_info

log = logging.getLogger(__name__)

REAL_KEYS = ("real_dataset", "real_path", "real_dir", "real", "dataset")
SYNTHETIC_KEYS = ("synthetic_set", "synthetic_path", "synthetic_dir", "synthetic")


def find_input_path(inputs: dict, keys: tuple[str, ...], *, base: Path) -> Path | None:
    """The first existing folder named under `keys` in metrics.json["inputs"] (str or {"path": str})."""
    for key in keys:
        value = inputs.get(key)
        if isinstance(value, dict):
            value = value.get("path")
        if not isinstance(value, str) or not value:
            continue
        for candidate in (Path(value), base / value):
            if candidate.is_dir():
                return candidate
    return None


def tile_grid(pixels: np.ndarray, *, columns: int = 4, tile_px: int = 96, gap_px: int = 3) -> bytes:
    """uint8 images [N, C, H, W] as one PNG grid; small images are enlarged without smoothing."""
    count = len(pixels)
    rows = max(1, -(-count // columns))
    sheet = Image.new(
        "RGB", (columns * tile_px + (columns - 1) * gap_px, rows * tile_px + (rows - 1) * gap_px), (255, 255, 255)
    )
    for index, image in enumerate(pixels):
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        tile = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
        smaller = tile.width < tile_px
        tile = tile.resize((tile_px, tile_px), Image.Resampling.NEAREST if smaller else Image.Resampling.LANCZOS)
        row, col = divmod(index, columns)
        sheet.paste(tile, (col * (tile_px + gap_px), row * (tile_px + gap_px)))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _load(
    folder: Path, *, classes: list[str] | None, size_px: int | None, per_class: int, split: str | None
) -> ImageArrays:
    return load_image_arrays(folder, split=split, classes=classes, size_px=size_px, limit_per_class=per_class)


def class_grids(inputs: dict, *, base: Path, per_class: int = 8) -> tuple[list[dict], str | None]:
    """[{class, real_png, synthetic_png, real_count, synthetic_count}] and a note when grids are unavailable.

    Real images come from the prepared dataset's training split; synthetic ones from the image set,
    resized to the real image size. Failures become a note, never an exception (the report still renders).
    """
    real_dir = find_input_path(inputs, REAL_KEYS, base=base)
    synth_dir = find_input_path(inputs, SYNTHETIC_KEYS, base=base)
    if real_dir is None and synth_dir is None:
        return [], (
            "Sample grids are not shown: metrics.json 'inputs' names no real dataset or synthetic "
            "folder that exists on this machine."
        )
    try:
        classes, size_px, real = None, None, None
        if real_dir is not None:
            try:
                info = read_dataset_info(real_dir)
                classes, size_px = list(info.classes), info.image_size_px
                split = "train"
            except ValueError:
                split = None
            real = _load(real_dir, classes=classes, size_px=size_px, per_class=per_class, split=split)
            classes = classes or real.classes
        synthetic = None
        if synth_dir is not None:
            if size_px is None and real is not None:
                size_px = int(real.pixels.shape[-1])
            synthetic = _load(synth_dir, classes=classes, size_px=size_px, per_class=per_class, split=None)
            classes = classes or synthetic.classes
    except (ValueError, OSError) as exc:
        log.warning("Sample grids skipped: %s", exc)
        return [], f"Sample grids are not shown: {exc}"
    grids = []
    for index, name in enumerate(classes or []):  # not None: one of the folders loaded (else returned above)
        entry: dict[str, Any] = {"class": name}
        for label, arrays in (("real", real), ("synthetic", synthetic)):
            chosen = arrays.pixels[arrays.labels == index] if arrays is not None else np.zeros((0,))
            entry[f"{label}_count"] = len(chosen)
            entry[f"{label}_png"] = tile_grid(chosen) if len(chosen) else None
        grids.append(entry)
    return grids, None
