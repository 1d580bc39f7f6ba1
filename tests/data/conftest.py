"""Builders of small source files (images in every mode, DICOM, NIfTI, .npz) for the data-stage tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def blob_image(rng: np.random.Generator, *, size_px: int = 24, right: bool = False) -> np.ndarray:
    """A grey uint8 image with a bright blob left or right, plus noise (different per call)."""
    yy, xx = np.mgrid[0:size_px, 0:size_px]
    cx = size_px * (0.7 if right else 0.3) + rng.normal(0, 1.5)
    blob = np.exp(-((xx - cx) ** 2 + (yy - size_px / 2) ** 2) / (2 * (size_px / 6) ** 2))
    return np.clip(30 + 190 * blob + rng.normal(0, 12, blob.shape), 0, 255).astype(np.uint8)


def write_class_folder(
    root: Path, *, per_class: int = 8, seed: int = 0, split: str | None = None, patients: bool = False
) -> Path:
    """root/[split/]{left,right}/*.png; with `patients`, two images per patient named pNN_k.png."""
    rng = np.random.default_rng(seed)
    for label in ("left", "right"):
        folder = root / split / label if split else root / label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            name = f"p{label[0]}{seed}{k // 2:02d}_{k}.png" if patients else f"{label}_{seed}_{k}.png"
            Image.fromarray(blob_image(rng, right=label == "right")).save(folder / name)
    return root


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """A CLASS/*.png folder with two classes of 8 images, two per patient (ids pXNN)."""
    return write_class_folder(tmp_path / "src", patients=True)


@pytest.fixture
def make_class_folder():
    """The `write_class_folder` builder, for tests that need several folders."""
    return write_class_folder
