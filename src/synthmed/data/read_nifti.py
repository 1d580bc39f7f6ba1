"""Read one NIfTI volume with nibabel into axial slices (canonical RAS, HU window or percentile scaling)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from synthmed.data.intensity import apply_window, fit_square, scale_to_uint8
from synthmed.data.records import ReadOptions, SourceImage
from synthmed.files import sha256_file

MAX_LABELS = 64  # integer volumes with at most this many distinct values are label maps
CT_AIR_HU = -500.0  # a volume whose minimum is below this is taken as CT in Hounsfield units
EMPTY_FOREGROUND_FRACTION = 0.02


def read_nifti(path: str | Path, options: ReadOptions) -> list[SourceImage]:
    """Axial slices of a 3D (or the first volume of a 4D) NIfTI image, shown in radiological convention.

    The volume is reoriented to canonical RAS; each slice is drawn with anterior up and the
    patient's right on the image's left. CT (minimum below -500 HU) uses `options.window`
    (default: mediastinum W350/L50); MR and other volumes use one 0.5-99.5 percentile range for
    the whole volume, so slices stay comparable. Every `slice_step`-th slice is kept; slices with
    under 2% foreground are skipped when `skip_empty_slices`. All slices share the patient id
    (the file name, unless metadata gives one).
    """
    path = Path(path)
    image = nib.as_closest_canonical(nib.load(str(path)))
    volume = np.asanyarray(image.dataobj, dtype=np.float32)
    if volume.ndim == 4:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {volume.shape}")
    is_ct = float(np.nanmin(volume)) < CT_AIR_HU
    if not is_ct and _is_label_map(volume):
        raise ValueError(
            f"looks like a segmentation label map ({len(np.unique(volume))} integer values), not an "
            f"image; keep masks out of the image folder (or pass them to your own pipeline)."
        )
    if is_ct:
        window = options.window or (350.0, 50.0)
        scaled = apply_window(volume, window)
    else:
        scaled = scale_to_uint8(volume, scaling="percentile")
    digest = sha256_file(path)
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    nx, ny, nz = volume.shape
    images = []
    for k in range(0, nz, options.slice_step):
        slice_ = scaled[::-1, ::-1, k].T  # rows: anterior at top; columns: patient's right on the left
        if options.skip_empty_slices and float((slice_ > 10).mean()) < EMPTY_FOREGROUND_FRACTION:
            continue
        images.append(
            SourceImage(
                pixels=fit_square(np.ascontiguousarray(slice_), size_px=options.size_px, fit=options.fit),
                source_path=str(path),
                source_sha256=f"{digest}:{k}",
                orig_format="NIFTI",
                orig_mode="CT" if is_ct else "MR/other",
                orig_size=f"{nx}x{ny}x{nz}",
                grey=True,
                patient_id=name,
                frame=k,
            )
        )
    return images


def _is_label_map(volume: np.ndarray) -> bool:
    sample = volume[:: max(1, volume.shape[0] // 32), :: max(1, volume.shape[1] // 32)]
    if not np.all(np.mod(sample, 1) == 0):
        return False
    return len(np.unique(volume)) <= MAX_LABELS
