"""Save synthetic images (PNG 8/16-bit, DICOM) with one provenance row each in an image-set manifest.

Usage (any generator: diffusion sampler, text-to-image, latent model)::

    with SyntheticSetWriter(out_dir, formats=("png", "dicom"), bit_depth=8) as writer:
        row = writer.add(pixels, label="pneumonia", label_idx=1, seed=42,
                         provenance={"sampler": "dpmpp", "steps": 20, "checkpoint": "runs/x/model"})
    # out_dir/manifest.csv: SYNTHETIC_COLUMNS first, extra provenance keys after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydicom.uid import generate_uid

from synthmed.data.manifest import MANIFEST_NAME, SYNTHETIC_COLUMNS, write_manifest
from synthmed.sample.dicom import write_synthetic_dicom

FORMATS = ("png", "dicom")
FORMAT_CHOICES = {"png": ("png",), "png16": ("png",), "dicom": ("dicom",), "png+dicom": ("png", "dicom")}
"""CLI `--format` value -> writer formats (png16 also sets bit_depth=16)."""


def slug(text: str) -> str:
    """A file-name-safe form of a class name, distinct for distinct names: a name of ASCII letters, digits, '.',
    '_' and '-' (not starting with '.') as it is; any other gets its safe characters plus a stable 6-hex hash
    ('Ünïcødé 肺' -> 'n_c_d-' + 6 hex digits; '肺' -> 'class-' + 6 hex digits)."""
    text = str(text)
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", text):
        return text
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "class"
    return f"{base}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:6]}"


def convert_bit_depth(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """uint8 <-> uint16 by exact scaling (x * 257 up, round(x / 257) down); same depth unchanged."""
    if pixels.dtype == np.uint8:
        return pixels if bit_depth == 8 else pixels.astype(np.uint16) * 257
    if pixels.dtype == np.uint16:
        return pixels if bit_depth == 16 else np.round(pixels / 257.0).astype(np.uint8)
    raise ValueError(f"pixels must be uint8 or uint16, got {pixels.dtype}.")


class SyntheticSetWriter:
    """Writes images under `out_dir/images/<label>/<image_id>.<ext>` and `out_dir/manifest.csv` on close.

    `formats`: any of "png", "dicom" (the manifest's `path` is the first format; a DICOM written
    beside a PNG goes in column `dicom_path`). `bit_depth`: 8 or 16 (16-bit PNG is grey only).
    `exist_ok=False` refuses a folder that already holds a manifest, so nothing is overwritten.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        formats: Iterable[str] = ("png",),
        bit_depth: int = 8,
        modality: str = "OT",
        exist_ok: bool = False,
    ):
        self.out_dir = Path(out_dir)
        self.formats = tuple(formats)
        unknown = [f for f in self.formats if f not in FORMATS]
        if not self.formats or unknown:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}.")
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}.")
        if (self.out_dir / MANIFEST_NAME).exists() and not exist_ok:
            raise FileExistsError(
                f"{self.out_dir / MANIFEST_NAME} already exists: that folder holds an image set; "
                f"choose a new --out folder (or delete that one first)."
            )
        self.bit_depth = bit_depth
        self.modality = modality
        self.rows: list[dict] = []
        self._ids: set[str] = set()
        self._series_uid = generate_uid()
        self._study_uid = generate_uid()
        self.closed = False
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> SyntheticSetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()  # keep the rows written so far even when generation failed midway

    def add(
        self,
        pixels: np.ndarray,
        *,
        label: str,
        label_idx: int,
        seed: int | None,
        provenance: dict | None = None,
        image_id: str | None = None,
    ) -> dict:
        """Write one image ([H, W] or [H, W, 3], uint8 or uint16) and return its manifest row."""
        if self.closed:
            raise RuntimeError("this SyntheticSetWriter is closed; make a new one.")
        pixels = np.asarray(pixels)
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
            raise ValueError(f"pixels must be [H, W] or [H, W, 3], got shape {pixels.shape}.")
        pixels = convert_bit_depth(pixels, self.bit_depth)
        if image_id is None:
            image_id = f"{slug(label)}_{seed:06d}" if seed is not None else f"{slug(label)}_n{len(self.rows):06d}"
        if image_id in self._ids:
            raise ValueError(f"image_id {image_id!r} already written: give each image its own seed or image_id.")
        provenance = dict(provenance or {})
        folder = self.out_dir / "images" / slug(label)
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, str] = {}
        for fmt in self.formats:
            if fmt == "png":
                paths[fmt] = self._write_png(folder / f"{image_id}.png", pixels)
            else:
                derivation = (  # names only, never operator paths: these files are meant to be shared
                    f"synthetic image generated by synthmed; model {provenance.get('model', '')}; "
                    f"checkpoint {provenance.get('checkpoint', '')} "
                    f"(sha256 {provenance.get('checkpoint_sha256') or 'unknown'}); seed {seed}"
                )
                write_synthetic_dicom(
                    folder / f"{image_id}.dcm",
                    pixels,
                    description=f"synthmed synthetic {label}",
                    derivation=derivation,
                    modality=self.modality,
                    label=str(label),
                    study_uid=self._study_uid,
                    series_uid=self._series_uid,
                    instance_number=len(self.rows) + 1,
                )
                paths[fmt] = str((folder / f"{image_id}.dcm").relative_to(self.out_dir))
        row: dict[str, object] = {c: "" for c in SYNTHETIC_COLUMNS}
        row.update(provenance)
        row.update(
            {
                "image_id": image_id,
                "path": paths[self.formats[0]],
                "label": str(label),
                "label_idx": int(label_idx),
                "synthetic": 1,
                "seed": "" if seed is None else int(seed),
                "bit_depth": self.bit_depth,
            }
        )
        row.setdefault("created_utc", "")
        if not row["created_utc"]:
            row["created_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if "dicom" in paths and self.formats[0] != "dicom":
            row["dicom_path"] = paths["dicom"]
        self.rows.append(row)
        self._ids.add(image_id)
        return row

    def _write_png(self, path: Path, pixels: np.ndarray) -> str:
        if pixels.dtype == np.uint16 and pixels.ndim == 3:
            raise ValueError("16-bit PNG is written for grey images only; use bit_depth=8 or DICOM for RGB.")
        image = Image.fromarray(pixels)
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
        return str(path.relative_to(self.out_dir))

    def frame(self) -> pd.DataFrame:
        """The manifest so far: SYNTHETIC_COLUMNS first, extra provenance columns after, in first-seen order."""
        extras: list[str] = []
        for row in self.rows:
            extras += [k for k in row if k not in SYNTHETIC_COLUMNS and k not in extras]
        return pd.DataFrame(self.rows, columns=list(SYNTHETIC_COLUMNS) + extras)

    def close(self) -> Path:
        """Atomically write `manifest.csv` (idempotent) and return its path."""
        path = write_manifest(self.frame(), self.out_dir)
        self.closed = True
        return path
