"""The on-disk contract between stages: prepared datasets and synthetic image sets (torch-free).

A **prepared dataset** (written by `synthmed prepare`) is a folder::

    DATASET/
      dataset.json        DatasetInfo: name, modality, channels, image_size_px, classes, ...
      manifest.csv        one row per image, REQUIRED_COLUMNS first, optional metadata after
      images/<id>.png     8-bit PNG, mode L (channels=1) or RGB (channels=3), image_size_px square
      card.md, card.json  the dataset card (balance, duplicates, leakage, shortcuts, errors)
      errors.csv          files that could not be read, with the reason

An **image set** (written by `synthmed sample`, `synthmed prompt`, ...) is a folder with a
`manifest.csv` holding at least `image_id, path, label` and, for synthetic images,
`synthetic=1` plus provenance columns (see SYNTHETIC_COLUMNS).

Paths in manifests are relative to the manifest's folder. Model space is [-1, 1]:
`pixel_uint8 / 127.5 - 1` (see `synthmed.data.dataset`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from synthmed.files import atomic_write_bytes, atomic_write_json

MANIFEST_NAME = "manifest.csv"
INFO_NAME = "dataset.json"
SPLITS = ("train", "val", "test")

REQUIRED_COLUMNS = ("image_id", "path", "split", "label", "label_idx")
"""Every prepared-dataset manifest has these, in this order."""

OPTIONAL_COLUMNS = (
    "patient_id",  # groups images of one patient; splits never cut a patient
    "source_path",  # the user's original file
    "source_sha256",  # hash of the original file's bytes
    "age_years",
    "sex",
    "view",  # harmonised metadata where the source has it
    "caption",  # free text for text-conditioned models
)

SYNTHETIC_COLUMNS = (
    "image_id",
    "path",
    "label",
    "label_idx",
    "synthetic",
    "seed",
    "sampler",
    "steps",
    "guidance_scale",
    "checkpoint",
    "provider",
    "model",
    "prompt",
    "created_utc",
)
"""Columns of a synthetic image set's manifest (provenance of every image)."""


class DatasetInfo(BaseModel):
    """`dataset.json`: what a prepared dataset holds."""

    name: str
    modality: str = Field(description="e.g. 'chest x-ray', 'lung ct', 'brain mri', 'blood smear'")
    channels: Literal[1, 3]
    image_size_px: int = Field(gt=0)
    classes: list[str] = Field(min_length=1)
    split_counts: dict[str, int] = Field(default_factory=dict)
    source: str = ""
    synthmed_version: str = ""


class ManifestError(ValueError):
    """A manifest or dataset folder does not follow the contract above."""


def write_manifest(frame: pd.DataFrame, folder: str | Path) -> Path:
    """Atomically write `frame` as `folder/manifest.csv`."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return atomic_write_bytes(Path(folder) / MANIFEST_NAME, buffer.getvalue().encode("utf-8"))


def read_manifest(folder: str | Path, *, required: tuple[str, ...] = REQUIRED_COLUMNS) -> pd.DataFrame:
    """Read `folder/manifest.csv`, checking the required columns; string ids stay strings."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path} not found. Point at a folder made by `synthmed prepare` (prepared dataset) "
            f"or `synthmed sample` (synthetic set), which both write {MANIFEST_NAME}."
        )
    try:
        frame = pd.read_csv(path, dtype={"image_id": str, "patient_id": str, "label": str, "path": str})
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise ManifestError(
            f"{path} is not a readable CSV file ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            f"re-create it with the command that wrote it."
        ) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path} lacks column(s) {missing}; it has {list(frame.columns)}.")
    return frame


def write_dataset_info(info: DatasetInfo, folder: str | Path) -> Path:
    """Atomically write `folder/dataset.json`."""
    return atomic_write_json(Path(folder) / INFO_NAME, info.model_dump())


def read_dataset_info(folder: str | Path) -> DatasetInfo:
    """Read and validate `folder/dataset.json`."""
    path = Path(folder) / INFO_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path} not found: {folder} is not a prepared dataset. If it holds your images, run `synthmed prepare "
            f"{folder} --out PREPARED` and pass PREPARED; else give a folder that `synthmed prepare` wrote."
        )
    try:
        return DatasetInfo.model_validate_json(path.read_text())
    except ValueError as exc:  # pydantic's ValidationError (bad JSON or fields) is a ValueError
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "loc": ()}
        raise ManifestError(
            f"{path} is damaged or not a dataset.json ({'.'.join(map(str, first['loc'])) or 'file'}: "
            f"{first['msg']}); re-create the dataset with `synthmed prepare`."
        ) from exc


def load_image_set(folder: str | Path, *, split: str | None = None) -> pd.DataFrame:
    """Rows of a prepared dataset or an image set, with `abs_path` and `synthetic` columns added.

    `split` filters a prepared dataset's rows (ignored for sets without a `split` column).
    """
    folder = Path(folder)
    frame = read_manifest(folder, required=("image_id", "path", "label"))
    if split is not None and "split" in frame.columns:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    frame["abs_path"] = [str((folder / p).resolve()) for p in frame["path"]]
    if "synthetic" not in frame.columns:
        frame["synthetic"] = 0
    frame["synthetic"] = frame["synthetic"].fillna(0).astype(int)
    return frame
