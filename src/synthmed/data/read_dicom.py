"""Read one DICOM file with pydicom: modality LUT, VOI LUT or a chosen window, MONOCHROME1 inversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from synthmed.data.intensity import apply_window, fit_square, is_grey, scale_to_uint8
from synthmed.data.records import ReadOptions, SourceImage
from synthmed.files import sha256_file


def read_dicom(path: str | Path, options: ReadOptions) -> list[SourceImage]:
    """Frames of a DICOM file as square uint8 images (the middle frame, or every frame).

    Files without file meta are read with `force=True`; compressed transfer syntaxes (JPEG,
    JPEG Lossless, JPEG 2000, RLE) decode through pylibjpeg/pydicom's handlers. Grey images get the
    modality LUT (Rescale Slope/Intercept), then `options.window` if given, else the file's VOI LUT
    or Window Center/Width, else per-image scaling; MONOCHROME1 is inverted so that air is dark.
    A file without Pixel Data (structured report, presentation state, ...) raises.
    """
    path = Path(path)
    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = getattr(ds, "SOPClassUID", None)
        raise ValueError(f"non-image DICOM: no Pixel Data (SOP class {getattr(sop, 'name', sop) or 'unknown'})")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR is not False else pydicom.uid.ExplicitVRLittleEndian
        )
    pixels = ds.pixel_array
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frames = pixels if n_frames > 1 else pixels[None]
    indices = range(n_frames) if options.frames == "all" else [n_frames // 2]
    digest = sha256_file(path)
    height, width = frames.shape[1:3]
    images = []
    for index in indices:
        frame = frames[index]
        if samples == 3:  # pydicom already converts YBR to RGB in pixel_array
            array = frame if frame.dtype == np.uint8 else scale_to_uint8(frame, scaling=options.scaling)
        else:
            array = _grey(frame, ds, options, photometric)
        images.append(
            SourceImage(
                pixels=fit_square(array, size_px=options.size_px, fit=options.fit),
                source_path=str(path),
                source_sha256=digest if n_frames == 1 else f"{digest}:{index}",
                orig_format="DICOM",
                orig_mode=photometric,
                orig_size=f"{width}x{height}",
                grey=is_grey(array),
                patient_id=str(ds.PatientID) if getattr(ds, "PatientID", "") else None,
                frame=index if n_frames > 1 else None,
                meta={k: v for k, v in _patient_meta(ds).items() if v is not None},
            )
        )
    return images


def _grey(frame: np.ndarray, ds: pydicom.Dataset, options: ReadOptions, photometric: str) -> np.ndarray:
    values = apply_modality_lut(frame, ds)
    if options.window is not None:
        array = apply_window(values, options.window)
    elif "VOILUTSequence" in ds or "WindowCenter" in ds:
        array = scale_to_uint8(apply_voi_lut(values, ds, index=0), scaling="minmax")
    else:
        array = scale_to_uint8(values, scaling=options.scaling)
    return 255 - array if photometric == "MONOCHROME1" else array


def _patient_meta(ds: pydicom.Dataset) -> dict:
    age = str(getattr(ds, "PatientAge", "") or "")
    age_years = int(age[:3]) if age[:3].isdigit() and age.endswith("Y") else None
    sex = str(getattr(ds, "PatientSex", "") or "") or None
    view = str(getattr(ds, "ViewPosition", "") or "") or None
    return {
        "age_years": age_years,
        "sex": sex,
        "view": view,
        "modality": str(getattr(ds, "Modality", "") or "") or None,
    }
