"""Build a blinded study: stratified, seeded case selection, one encoding chain for every image, blinding audit."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator
from tqdm import tqdm

from synthmed.data.manifest import MANIFEST_NAME, ManifestError, load_image_set, read_dataset_info
from synthmed.files import atomic_write_bytes
from synthmed.study import audit, crud, encoding
from synthmed.study.db import init_db, make_engine, make_sessionmaker
from synthmed.study.settings import DATABASE_NAME, StudySettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ADMIN_USERNAME = "admin"


class StudySpec(BaseModel):
    """What `synthmed study create` was asked for, validated before anything is written."""

    name: str = "Spot the fake"
    cases: int = Field(gt=0, description="number of images each reader labels")
    synthetic_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    readers: list[str] = Field(default_factory=list)
    seed: int = 0
    all_synthetic: bool = False
    educational: bool = False
    size_px: int | None = Field(default=None, ge=8, le=4096, description="default: smallest selected image side")
    conditions: list[str] = Field(default_factory=list)
    modality: str | None = Field(default=None, description="overrides the modality read from the image sets")
    match: bool = Field(default=False, description="resample both sides from one common size, same intensity stretch")
    allow_unblinded: bool = Field(default=False, description="create even when the blinding audit fails")
    margin_auc: float = Field(default=0.1, gt=0, lt=0.5, description="equivalence margin around AUC 0.5")

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        if self.all_synthetic:
            self.synthetic_fraction = 1.0
        if len(set(self.readers)) != len(self.readers):
            raise ValueError(f"reader names must be unique; got {self.readers}.")
        return self


@dataclass
class CreatedStudy:
    """What the organiser needs once: admin credentials and each reader's one-time invitation token."""

    study_dir: Path
    admin_username: str
    admin_password: str
    invitations: dict[str, str] = field(default_factory=dict)
    n_real: int = 0
    n_synthetic: int = 0
    image_size_px: int = 0
    blinding_audit: audit.AuditResult | None = None


class BlindingAuditFailed(ValueError):
    """The served files alone separate real from synthetic; the message names the giveaway and the fix."""


def load_source(path: str | Path, *, modality: str | None = None) -> pd.DataFrame:
    """An image set as rows `image_id, abs_path, label, modality, synthetic`.

    `path` is a folder with a manifest.csv (prepared dataset or synthetic set), that manifest file itself,
    or a plain folder of images where the parent folder name is the class (ImageFolder layout).
    """
    path = Path(path)
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass a folder of images or one with a manifest.csv.")
    if (path / MANIFEST_NAME).is_file():
        frame = load_image_set(path)
        if modality is None and "modality" not in frame.columns:
            try:
                modality = read_dataset_info(path).modality
            except (ManifestError, ValueError):
                modality = None
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        frame = pd.DataFrame(
            {
                "image_id": [str(p.relative_to(path)) for p in files],
                "abs_path": [str(p.resolve()) for p in files],
                "label": [p.parent.name if p.parent != path else "unlabelled" for p in files],
                "synthetic": 0,
            }
        )
    if frame.empty:
        raise ValueError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no manifest rows.")
    if modality is not None or "modality" not in frame.columns:
        frame["modality"] = modality or "unspecified"
    frame["label"] = frame["label"].astype(str)
    frame["modality"] = frame["modality"].fillna("unspecified").astype(str)
    return frame[["image_id", "abs_path", "label", "modality", "synthetic"]].reset_index(drop=True)


def allocate(total: int, capacity: dict[tuple, int], *, rng: np.random.Generator) -> dict[tuple, int]:
    """Split `total` as evenly as possible over strata without exceeding each stratum's `capacity`."""
    if sum(capacity.values()) < total:
        raise ValueError(
            f"asked for {total} images but the strata only hold {sum(capacity.values())} "
            f"({ {' / '.join(k): v for k, v in capacity.items()} }); ask for fewer --cases (`cases` in an "
            f"experiment's [study.NAME]) or sample more images."
        )
    quota = {key: 0 for key in capacity}
    remaining = total
    while remaining:
        open_keys = [k for k in capacity if quota[k] < capacity[k]]
        share = remaining // len(open_keys)
        if share == 0:
            picks = rng.choice(len(open_keys), size=remaining, replace=False)
            for i in picks:
                quota[open_keys[i]] += 1
            break
        for key in open_keys:
            take = min(share, capacity[key] - quota[key])
            quota[key] += take
            remaining -= take
    return quota


def select_cases(
    real: pd.DataFrame | None, synthetic: pd.DataFrame, *, spec: StudySpec, rng: np.random.Generator
) -> pd.DataFrame:
    """Seeded, stratified (modality, class) choice of cases; real and synthetic get the same strata mix."""
    n_synthetic = round(spec.cases * spec.synthetic_fraction)
    n_real = spec.cases - n_synthetic
    strata = lambda f: set(zip(f["modality"], f["label"]))  # noqa: E731
    common = strata(synthetic) if real is None or n_real == 0 else strata(synthetic) & strata(real)
    if n_real and real is None:
        raise ValueError("a study with real images needs --real; use --all-synthetic for a synthetic-only study.")
    if not common:
        raise ValueError(
            f"real and synthetic images share no (modality, class): real {sorted(strata(real))}, "
            f"synthetic {sorted(strata(synthetic))}. Align the labels or pass --modality."
        )
    dropped = (strata(synthetic) | (strata(real) if real is not None else set())) - common
    if dropped:
        log.warning("strata present on one side only are left out: %s", sorted(dropped))
    chosen = []
    for frame, count, is_synthetic in ((real, n_real, False), (synthetic, n_synthetic, True)):
        if count == 0 or frame is None:
            continue
        groups = {key: g for key, g in frame.groupby(["modality", "label"]) if key in common}
        quota = allocate(count, {k: len(g) for k, g in groups.items()}, rng=rng)
        for key, group in groups.items():
            picks = rng.choice(len(group), size=quota[key], replace=False)
            chosen.append(group.iloc[np.sort(picks)].assign(is_synthetic=is_synthetic))
    cases = pd.concat(chosen, ignore_index=True)
    return cases.iloc[rng.permutation(len(cases))].reset_index(drop=True)


def build_study(
    spec: StudySpec,
    *,
    synthetic_dir: str | Path,
    study_dir: str | Path,
    real_dir: str | Path | None = None,
    database_url: str | None = None,
    admin_password: str | None = None,
) -> CreatedStudy:
    """Select cases, write the blinded images and the database (truth key inside) into a new `study_dir`."""
    study_dir = Path(study_dir)
    if study_dir.exists() and any(study_dir.iterdir()):
        raise ValueError(f"{study_dir} exists and is not empty; pick a new folder for the study.")
    rng = np.random.default_rng(spec.seed)
    synthetic = load_source(synthetic_dir, modality=spec.modality)
    real = None if spec.all_synthetic or real_dir is None else load_source(real_dir, modality=spec.modality)
    if real is not None and real["synthetic"].any():
        raise ValueError(
            f"{real_dir} marks {int(real['synthetic'].sum())} image(s) synthetic=1; pass them with --synthetic instead."
        )
    if real is not None:
        _align_modality(real, synthetic)
    cases = select_cases(real, synthetic, spec=spec, rng=rng)
    pngs, plan = _encode_all(list(cases["abs_path"]), spec)
    blinding = None
    if real is not None and not spec.all_synthetic:
        blinding = audit.audit(pngs, list(cases["is_synthetic"]), seed=spec.seed)
        if not blinding.passed:
            if not spec.allow_unblinded:
                raise BlindingAuditFailed(audit.refusal(blinding))
            blinding.overridden = True
            log.warning("blinding audit failed and was overridden: %s", blinding.summary)
    settings = StudySettings(study_dir=study_dir, database_url=database_url)
    password = admin_password or secrets.token_urlsafe(12)
    created_folder = not study_dir.exists()
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        settings.resolved_secret_key()
        tokens = [secrets.token_urlsafe(16) for _ in range(len(cases))]
        fixed_mtime = time.time()
        for token, png in zip(tokens, pngs):
            path = atomic_write_bytes(settings.images_dir / f"{token}.png", png)
            os.utime(path, (fixed_mtime, fixed_mtime))
        engine = make_engine(settings.resolved_database_url())
        init_db(engine)
        invitations = {}
        with make_sessionmaker(engine).begin() as session:
            crud.create_study(
                session=session,
                name=spec.name,
                seed=spec.seed,
                image_size_px=plan.size_px,
                educational=spec.educational,
                all_synthetic=spec.all_synthetic,
                conditions=spec.conditions,
                margin_auc=spec.margin_auc,
                blinding_audit=json.dumps(blinding.to_dict()) if blinding else "",
            )
            for token, row in zip(tokens, cases.itertuples()):
                crud.add_case(
                    session=session,
                    token=token,
                    is_synthetic=bool(row.is_synthetic),
                    modality=row.modality,
                    label=row.label,
                    source_id=str(row.image_id),
                    source_path=row.abs_path,
                )
            crud.create_admin(session=session, username=ADMIN_USERNAME, password=password)
            for name in spec.readers:
                _, invitations[name] = crud.add_reader(session=session, name=name)
        engine.dispose()
        database_file = study_dir / DATABASE_NAME
        if database_file.exists():
            database_file.chmod(0o600)  # it holds the truth key
    except BaseException:
        _remove_contents(study_dir, remove_folder=created_folder)
        raise
    log.info(
        "study with %d cases (%d synthetic) written to %s", len(cases), int(cases["is_synthetic"].sum()), study_dir
    )
    return CreatedStudy(
        study_dir=study_dir,
        admin_username=ADMIN_USERNAME,
        admin_password=password,
        invitations=invitations,
        n_real=int((~cases["is_synthetic"]).sum()),
        n_synthetic=int(cases["is_synthetic"].sum()),
        image_size_px=plan.size_px,
        blinding_audit=blinding,
    )


def _encode_all(paths: list[str], spec: StudySpec) -> tuple[list[bytes], encoding.EncodingPlan]:
    """Every image through `encoding`'s one chain: a first pass decides size and mode, a second encodes."""
    sides, colour = [], []
    for path in tqdm(paths, desc="reading images", unit="img"):
        pixels = encoding.load(path)
        sides.append(min(pixels.shape[:2]))
        colour.append(pixels.ndim == 3)
    plan = encoding.plan_encoding(sides, colour, size_px=spec.size_px, match=spec.match)
    pngs = [encoding.encode(encoding.load(p), plan) for p in tqdm(paths, desc="blinding images", unit="img")]
    return pngs, plan


def _align_modality(real: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    """A side with no modality information takes the other side's single modality (in place)."""
    for side, other in ((real, synthetic), (synthetic, real)):
        if set(side["modality"]) == {"unspecified"} and other["modality"].nunique() == 1:
            side["modality"] = other["modality"].iloc[0]


def _remove_contents(folder: Path, *, remove_folder: bool) -> None:
    """Undo a failed build: the folder was new or empty, so everything in it is ours."""
    for child in folder.iterdir() if folder.is_dir() else []:
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)
