"""Find the images of a source folder or file: classes and splits from the layout, ids from metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from synthmed.data.records import ReadOptions, SourceImage, SourceItem

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
    "all": None,
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".jp2"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IGNORED_SUFFIXES = {".txt", ".csv", ".md", ".json", ".xml", ".html", ".pdf", ".py", ".zip", ".npz", ".npy"}
METADATA_FIELDS = ("patient_id", "label", "age_years", "sex", "view", "caption")


def file_kind(path: Path) -> str | None:
    """'image', 'dicom', 'nifti', or None for files that are not images (ignored, counted in the card)."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in IGNORED_SUFFIXES or name.startswith("."):
        return None
    if suffix in DICOM_SUFFIXES or _has_dicm_magic(path):
        return "dicom"
    return "image"  # unknown suffix: try it as an image; failure is listed in errors.csv


def _has_dicm_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def scan_source(
    source: Path, *, metadata_csv: Path | None = None, patient_id_regex: str | None = None
) -> tuple[list[SourceItem], list[str]]:
    """List the files of `source` with label/split/patient id, and notes for the card.

    Layouts: `SOURCE/{train,val,test}/CLASS/...` (user's splits kept), `SOURCE/all/CLASS/...` or
    `SOURCE/CLASS/...` (split later), or files directly in SOURCE (one class, `unlabelled`, unless the
    metadata CSV names labels). A single file is a source of one file.
    """
    notes: list[str] = []
    if source.is_file():
        entries = [(source, None, None)]
    else:
        entries = list(_walk(source))
    metadata = _load_metadata(metadata_csv) if metadata_csv else None
    regex = re.compile(patient_id_regex) if patient_id_regex else None
    items, ignored, matched = [], 0, 0
    for path, split, label in entries:
        kind = file_kind(path)
        if kind is None:
            ignored += 1
            continue
        meta: dict = {"kind": kind}
        patient_id = None
        if regex is not None:
            found = regex.search(path.name)
            if found:
                patient_id = found.group(1) if found.groups() else found.group(0)
                matched += 1
        if metadata is not None:
            row = metadata.get(str(path.relative_to(source)) if source.is_dir() else path.name) or metadata.get(
                path.name
            )
            if row:
                label = row.get("label") or label
                patient_id = row.get("patient_id") or patient_id
                meta.update({k: row[k] for k in ("age_years", "sex", "view", "caption") if row.get(k) is not None})
        items.append(SourceItem(path=str(path), label=label, split=split, patient_id=patient_id, meta=meta))
    if ignored:
        notes.append(f"{ignored} non-image file(s) ignored (e.g. .txt/.csv/.md).")
    if regex is not None:
        notes.append(
            f"--patient-id-regex {patient_id_regex!r} matched {matched} of {len(items)} file names; "
            f"the others are their own patient unless DICOM/NIfTI headers give an id."
        )
    if metadata is not None:
        notes.append(f"metadata CSV {metadata_csv} joined on file name ({len(metadata)} rows).")
    labelled = {label for path, _, label in entries if label is not None and file_kind(path) is not None}
    empty = [str(f) for f in _class_folders(source) if f.name not in labelled] if source.is_dir() and items else []
    if empty:
        raise ValueError(
            f"class folder(s) {', '.join(empty)} hold no image files: a class without images cannot be trained "
            f"or tested. Add its images, or remove the empty folder."
        )
    if not items:
        raise ValueError(
            f"{source} holds no image files. Expected PNG/JPEG/TIFF/BMP, DICOM or NIfTI files as "
            f"SOURCE/CLASS/file, SOURCE/{{train,test}}/CLASS/file or files directly in SOURCE."
        )
    return items, notes


def _walk(source: Path):
    """Yield (path, split, label) for every file under `source`, in sorted order."""
    for path in sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")):
        yield path, None, None
    splits = _split_folders(source)
    if splits:
        for folder in splits:
            yield from _walk_classes(folder, SPLIT_NAMES[folder.name.lower()])
    else:
        yield from _walk_classes(source, None, top_files=False)


def _split_folders(source: Path) -> list[Path]:
    """SOURCE's split folders (train/val/test) when every folder in it is one; else none (SOURCE/CLASS/...)."""
    folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    splits = [p for p in folders if p.name.lower() in SPLIT_NAMES]
    return splits if splits and len(splits) == len(folders) else []


def _class_folders(source: Path) -> list[Path]:
    """The class folders `_walk` reads labels from (under the split folders, or directly in `source`)."""
    parents = _split_folders(source) or [source]
    return [c for parent in parents for c in sorted(parent.iterdir()) if c.is_dir() and not c.name.startswith(".")]


def _walk_classes(folder: Path, split: str | None, top_files: bool = True):
    for child in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if child.is_dir():
            for path in sorted(child.rglob("*")):
                if path.is_file() and not any(part.startswith(".") for part in path.relative_to(child).parts):
                    yield path, split, child.name
        elif top_files:
            yield child, split, None


def _load_metadata(path: Path) -> dict[str, dict]:
    """{file name or relative path: {patient_id, label, age_years, sex, view, caption}} from a CSV."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"metadata CSV {path} not found.")
    frame = pd.read_csv(path, dtype=str)
    key = next((c for c in ("file", "filename", "file_name", "path", "image") if c in frame.columns), None)
    if key is None:
        raise ValueError(
            f"metadata CSV {path} needs a 'file' column (file name or path relative to SOURCE); "
            f"it has {list(frame.columns)}."
        )
    frame = frame.where(frame.notna(), None)
    return {str(row[key]): {f: row.get(f) for f in METADATA_FIELDS} for _, row in frame.iterrows()}


def read_item(item: SourceItem, options: ReadOptions) -> list[SourceImage]:
    """Read one file with the reader for its kind (raises on unreadable files; `prepare` lists them)."""
    path = Path(item.path)
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    kind = item.meta.get("kind") or file_kind(path)
    if kind == "dicom":
        from synthmed.data.read_dicom import read_dicom

        images = read_dicom(path, options)
    elif kind == "nifti":
        from synthmed.data.read_nifti import read_nifti

        images = read_nifti(path, options)
    else:
        from synthmed.data.read_image import read_image

        images = read_image(path, options)
    meta = {k: v for k, v in item.meta.items() if k != "kind"}
    for image in images:
        image.label = item.label if item.label is not None else image.label
        image.split = item.split
        image.patient_id = item.patient_id if item.patient_id is not None else image.patient_id
        image.meta = {**image.meta, **meta}
    return images
