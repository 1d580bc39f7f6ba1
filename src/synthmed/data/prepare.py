"""`prepare_dataset`: read a source (folder, DICOM, NIfTI, .npz), split by patient, write the contract."""

from __future__ import annotations

import logging
import multiprocessing
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Literal

import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from synthmed import __version__
from synthmed.data.card import write_card
from synthmed.data.intensity import Fit, Scaling, parse_window, to_grey, to_rgb
from synthmed.data.manifest import REQUIRED_COLUMNS, DatasetInfo, write_dataset_info, write_manifest
from synthmed.data.quality import find_near_duplicates, quality_findings
from synthmed.data.read_npz import MEDMNIST_MODALITY, medmnist_name, read_npz
from synthmed.data.records import ReadError, ReadOptions, SourceImage, SourceItem
from synthmed.data.scan import read_item, scan_source
from synthmed.data.splits import split_by_patient, split_groups
from synthmed.files import atomic_write_bytes, portable_name, swap_folder

log = logging.getLogger(__name__)

META_COLUMNS = ("age_years", "sex", "view", "caption")


class PrepareConfig(BaseModel):
    """Options of `synthmed prepare` (validated at the edge; see docs/data.md)."""

    model_config = ConfigDict(extra="forbid")

    size_px: int = Field(64, ge=8, le=4096)
    channels: Literal["1", "3", "auto"] = "auto"
    fit: Fit = "pad"
    scaling: Scaling = "minmax"
    window: str | None = None
    metadata_csv: Path | None = None
    patient_id_regex: str | None = None
    classes: list[str] | None = None
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    seed: int = 0
    frames: Literal["middle", "all"] = "middle"
    slice_step: int = Field(1, ge=1)
    skip_empty_slices: bool = True
    workers: int = Field(2, ge=1)
    name: str | None = None
    modality: str | None = None
    overwrite: bool = False
    group_near_duplicates: bool = True  # keep near-duplicate images in one split when we carve splits
    source_description: str | None = None  # recorded in dataset.json instead of the source path

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        parse_window(value)
        return value

    @field_validator("patient_id_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"--patient-id-regex {value!r} is not a valid regular expression ({exc}); "
                    f"e.g. 'person(\\d+)_' takes the digits after 'person'."
                ) from None
        return value

    def read_options(self) -> ReadOptions:
        return ReadOptions(
            size_px=self.size_px,
            fit=self.fit,
            scaling=self.scaling,
            window=parse_window(self.window),
            frames=self.frames,
            slice_step=self.slice_step,
            skip_empty_slices=self.skip_empty_slices,
        )


def prepare_dataset(source: str | Path, *, out_dir: str | Path, config: PrepareConfig | None = None) -> Path:
    """Prepare `source` into `out_dir` (images/, manifest.csv, dataset.json, card.md/json, errors.csv).

    The dataset is built in `out_dir.partial` and renamed into place at the end, so a crash never
    leaves a half-written dataset behind. Returns `out_dir`.
    """
    config = config or PrepareConfig()
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise FileNotFoundError(
            f"{source} does not exist. Give a folder of images (CLASS/*.png, train/CLASS/...), "
            f"a DICOM or NIfTI file or folder, or a MedMNIST .npz."
        )
    if source.is_dir() and out_dir.resolve().is_relative_to(source.resolve()):
        raise ValueError(
            f"--out {out_dir} lies inside the source folder {source}; a later run would read the "
            f"prepared images as a class. Write the prepared dataset outside the source."
        )
    if source.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(
            f"the source {source} lies inside --out {out_dir}; preparing would replace the source. "
            f"Write the prepared dataset to a folder outside the source."
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        if not config.overwrite:
            raise ValueError(f"{out_dir} already exists and is not empty; choose another --out or pass --overwrite.")
        if not (out_dir / "dataset.json").is_file():
            raise ValueError(
                f"--overwrite replaces a prepared dataset, and {out_dir} is not one (no dataset.json): "
                f"nothing was deleted. Choose another --out or empty that folder yourself."
            )
    started = time.perf_counter()

    # Read every image (in a process pool for files).
    images, errors, classes_given, scan_notes = _read_source(source, config)
    if not images:
        details = (
            f" {len(errors)} file(s) could not be read, e.g. {errors[0].source_path}: {errors[0].reason}"
            if errors
            else ""
        )
        raise ValueError(
            f"{source}: no readable images found.{details} Expected PNG/JPEG/TIFF/BMP, DICOM (.dcm), "
            f"NIfTI (.nii/.nii.gz) files, optionally in CLASS/ or SPLIT/CLASS/ folders, or a MedMNIST .npz."
        )

    # Decide channels, classes, patients and splits.
    frame = _frame(images, source)
    channels, channel_reason = _decide_channels(frame, config.channels)
    classes = classes_given or sorted(frame["label"].unique())
    unknown = sorted(set(frame["label"]) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among --classes {classes}; add them or fix the metadata CSV.")
    absent = [c for c in classes if c not in set(frame["label"])]
    if absent:
        raise ValueError(
            f"classes {absent} (of --classes {classes}) have no readable images in {source}: a class without "
            f"images cannot be trained or tested. Add its images, or remove it from --classes "
            f"([data.prepare] classes in an experiment file)."
        )
    frame["label_idx"] = [classes.index(label) for label in frame["label"]]
    near = _assign_splits(frame, images, config)
    frame["image_id"] = [f"{k:06d}" for k in range(len(frame))]
    frame["path"] = [f"images/{image_id}.png" for image_id in frame["image_id"]]

    # Write images, tables and the card into a partial folder, then move it into place.
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "images").mkdir(parents=True)
    pixels = [to_grey(im.pixels) if channels == 1 else to_rgb(im.pixels) for im in images]
    for path, array in zip(tqdm(frame["path"], desc="write", unit="img", leave=False), pixels):
        Image.fromarray(array, "L" if channels == 1 else "RGB").save(partial / path, optimize=False)
    findings = quality_findings(frame, near)
    _assert_no_carved_leakage(frame)
    columns = list(REQUIRED_COLUMNS) + [
        "patient_id",
        "source_path",
        "source_sha256",
        *META_COLUMNS,
        "orig_format",
        "orig_mode",
        "orig_size",
        "frame",
        "given_split",
    ]
    write_manifest(frame[[c for c in columns if c in frame.columns]], partial)
    errors_frame = pd.DataFrame(
        [{"source_path": _inside(e.source_path, source), "reason": _inside(e.reason, source)} for e in errors],
        columns=["source_path", "reason"],
    )
    atomic_write_bytes(partial / "errors.csv", errors_frame.to_csv(index=False).encode())
    name = config.name or source.stem.removesuffix(".nii")
    info = DatasetInfo(
        name=name,
        modality=config.modality or _guess_modality(source, frame),
        channels=channels,
        image_size_px=config.size_px,
        classes=classes,
        split_counts={s: int(n) for s, n in frame["split"].value_counts().items()},
        source=config.source_description or portable_name(source, parts=1),
        synthmed_version=__version__,
    )
    write_dataset_info(info, partial)
    write_card(
        partial,
        info=info,
        frame=frame,
        findings=findings,
        errors=errors_frame,
        config=config,
        notes=scan_notes + [channel_reason] + _split_notes(frame, config, len(near)),
        duration_s=time.perf_counter() - started,
    )
    swap_folder(partial, out_dir)  # with --overwrite the old dataset is moved aside, then deleted
    log.info(
        "prepared %d images (%d errors) into %s in %.1f s",
        len(frame),
        len(errors),
        out_dir,
        time.perf_counter() - started,
    )
    return out_dir


def _assign_splits(frame: pd.DataFrame, images: list[SourceImage], config: PrepareConfig) -> list:
    """Set `frame["split"]` by patient, keeping duplicate-linked images together; returns near-duplicate pairs."""
    near = find_near_duplicates(frame, [im.pixels for im in images])
    linked = [(a, b) for a, b, _ in near] if config.group_near_duplicates else []
    groups = split_groups(frame["patient_id"], frame["source_sha256"].str.split(":").str[0], linked)
    frame["split"] = split_by_patient(
        frame.assign(split_group=groups),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
        group_column="split_group",
    ).to_numpy()
    return near


def _read_source(
    source: Path, config: PrepareConfig
) -> tuple[list[SourceImage], list[ReadError], list[str] | None, list[str]]:
    options = config.read_options()
    if source.is_file() and source.suffix.lower() == ".npz":
        npz_images, classes = read_npz(source, options, classes=config.classes)
        return (
            npz_images,
            [],
            classes,
            [
                "MedMNIST .npz: official train/val/test splits kept; duplicates are hashed "
                "on pixel bytes (no file per image)."
            ],
        )
    items, notes = scan_source(source, metadata_csv=config.metadata_csv, patient_id_regex=config.patient_id_regex)
    images: list[SourceImage] = []
    errors: list[ReadError] = []
    results = _map(items, options, config.workers)
    for result in results:
        if isinstance(result, ReadError):
            errors.append(result)
        else:
            images.extend(result)
    return images, errors, config.classes, notes


def _read_one(args: tuple[SourceItem, ReadOptions]) -> list[SourceImage] | ReadError:
    item, options = args
    try:
        images = read_item(item, options)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a listed error, never a crash
        return ReadError(item.path, f"{type(exc).__name__}: {exc}".strip()[:500])
    if not images:
        return ReadError(item.path, "no image left after reading (every slice/frame empty)")
    return images


def _map(items: list[SourceItem], options: ReadOptions, workers: int) -> list:
    jobs = [(item, options) for item in items]
    if workers <= 1 or len(jobs) < 64:
        return [_read_one(job) for job in tqdm(jobs, desc="read", unit="file", leave=False)]
    # fork starts workers in milliseconds and needs no __main__ guard in users' scripts; the workers
    # only use numpy/PIL/pydicom/nibabel, never torch, so forking a process that imported torch is safe.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(workers) as pool:
        return list(
            tqdm(pool.imap(_read_one, jobs, chunksize=32), total=len(jobs), desc="read", unit="file", leave=False)
        )


def _frame(images: list[SourceImage], source: Path) -> pd.DataFrame:
    """One row per image; source paths relative to a source folder (dataset.json keeps the folder)."""
    rows = []
    for im in images:
        if source.is_dir() and im.source_path.startswith(str(source)):
            im.source_path = str(Path(im.source_path).relative_to(source))
        row = {
            "label": im.label or "unlabelled",
            "given_split": im.split,
            "patient_known": im.patient_id is not None,
            "patient_id": im.patient_id if im.patient_id is not None else f"img:{im.source_path}",
            "source_path": im.source_path,
            "source_sha256": im.source_sha256,
            "orig_format": im.orig_format,
            "orig_mode": im.orig_mode,
            "orig_size": im.orig_size,
            "frame": im.frame,
            "grey": im.grey,
        }
        row.update({k: im.meta.get(k) for k in META_COLUMNS})
        row["modality_tag"] = im.meta.get("modality")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.dropna(axis=1, how="all").assign(label=lambda f: f["label"].astype(str))


def _decide_channels(frame: pd.DataFrame, choice: str) -> tuple[int, str]:
    grey_share = float(frame["grey"].mean())
    if choice != "auto":
        return int(choice), f"channels: {choice} (chosen by --channels; {grey_share:.0%} of images have grey content)."
    channels = 1 if grey_share >= 0.5 else 3
    return channels, (
        f"channels: auto -> {channels}, because {grey_share:.0%} of images have grey content "
        f"(RGB with equal channels counts as grey; 1 channel when at least half are grey)."
    )


def _split_notes(frame: pd.DataFrame, config: PrepareConfig, n_near: int) -> list[str]:
    given = frame["given_split"].dropna().unique() if "given_split" in frame.columns else []
    notes = [
        f"splits kept from the source: {sorted(map(str, given))}."
        if len(given)
        else "no splits in the source: train/val/test carved by patient."
    ]
    if config.group_near_duplicates:
        notes.append(
            f"images linked by byte-identical files or near-duplicates ({n_near} near pairs) are kept in "
            f"one split wherever synthmed carves splits."
        )
    if not frame["patient_known"].any():
        notes.append(
            "no patient ids (no metadata CSV, --patient-id-regex or DICOM/NIfTI ids): split BY IMAGE, "
            "so images of one patient may sit in two splits."
        )
    else:
        unknown = int((~frame["patient_known"]).sum())
        if unknown:
            notes.append(f"{unknown} image(s) without a patient id are their own patient.")
    return notes


def _assert_no_carved_leakage(frame: pd.DataFrame) -> None:
    """Splits we carved never cut a patient (leakage in the user's own splits is reported, not fixed)."""
    given = frame["given_split"].fillna("-") if "given_split" in frame.columns else pd.Series("-", index=frame.index)
    per_patient = pd.DataFrame({"patient": frame["patient_id"], "given": given, "split": frame["split"]})
    stats = per_patient.groupby("patient").agg(given=("given", "nunique"), split=("split", "nunique"))
    cut = stats[(stats["given"] <= 1) & (stats["split"] > 1)]
    if not cut.empty:
        raise AssertionError(f"internal error: carved splits cut patients {list(cut.index)[:5]}")


def _guess_modality(source: Path, frame: pd.DataFrame) -> str:
    known = MEDMNIST_MODALITY.get(medmnist_name(source) or "")
    if known:
        return known
    formats = set(frame["orig_format"])
    if formats == {"NIFTI"}:
        return "ct" if (frame["orig_mode"] == "CT").all() else "volume (ct and mr)"
    if "modality_tag" in frame.columns and frame["modality_tag"].notna().any():
        tags = frame["modality_tag"].dropna().value_counts()
        return "dicom " + "/".join(str(tag) for tag in tags.index)
    return "unknown (pass --modality)"


def summarise(out_dir: str | Path) -> str:
    """A few lines for the CLI: counts per split and class, and the card's warnings."""
    import json

    card = json.loads((Path(out_dir) / "card.json").read_text())
    lines = [f"prepared {card['n_images']} images of {len(card['classes'])} classes into {out_dir}"]
    for split, counts in card["balance"].items():
        lines.append(f"  {split:5s} " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    lines += [f"  warning: {w}" for w in card["warnings"]]
    lines.append(f"  errors: {card['errors']['count']} (see errors.csv); card: {Path(out_dir) / 'card.md'}")
    return "\n".join(lines)


__all__ = ["PrepareConfig", "prepare_dataset", "summarise"]


def _inside(text: str, source: Path) -> str:
    """`text` with the source folder's absolute path removed, so the card and errors.csv name files within the
    source (an absolute path carries the operator's folders and user name into a file meant to be shared)."""
    for prefix in {str(source), str(source.resolve())}:
        if source.is_dir():
            text = text.replace(prefix.rstrip("/") + "/", "")
    return text
