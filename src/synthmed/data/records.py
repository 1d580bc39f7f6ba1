"""The records readers hand to `prepare`: a file to read, an image read from it, or why it failed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthmed.data.intensity import Fit, Scaling


@dataclass(frozen=True)
class ReadOptions:
    """How readers turn source pixels into square uint8 images (a picklable slice of PrepareConfig)."""

    size_px: int
    fit: Fit = "pad"
    scaling: Scaling = "minmax"
    window: tuple[float, float] | None = None
    frames: str = "middle"  # DICOM multi-frame: "middle" or "all"
    slice_step: int = 1  # NIfTI: keep every k-th axial slice
    skip_empty_slices: bool = True  # NIfTI: drop slices that are (nearly) all background


@dataclass(frozen=True)
class SourceItem:
    """One file found in the source, with what the folder layout or metadata says about it."""

    path: str
    label: str | None = None
    split: str | None = None
    patient_id: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class SourceImage:
    """One image (a file, a DICOM frame or a NIfTI slice) already made square at `size_px`."""

    pixels: np.ndarray  # uint8 HxW (grey) or HxWx3 (colour)
    source_path: str
    source_sha256: str
    orig_format: str  # PNG, JPEG, DICOM, NIFTI, NPZ, ...
    orig_mode: str  # PIL mode, DICOM photometric interpretation, or dtype
    orig_size: str  # "WxH" (or "WxHxD" for volumes)
    grey: bool
    label: str | None = None
    split: str | None = None
    patient_id: str | None = None
    frame: int | None = None  # DICOM frame or NIfTI slice index
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReadError:
    """A file that could not be read, and why (listed in errors.csv and the card)."""

    source_path: str
    reason: str
