"""The evaluation orchestrator: load real and synthetic images, run every part, write EVAL_DIR/metrics.json."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.data.manifest import read_dataset_info
from synthmed.evaluate import sections
from synthmed.evaluate.encoder import EncoderSettings, load_or_train_domain_extractor
from synthmed.evaluate.features import (
    INCEPTION_WEIGHTS,
    PRETRAINED_EXTRACTORS,
    XRV_WEIGHTS,
    FeatureExtractor,
    resolve_weights,
)
from synthmed.evaluate.fidelity_section import fidelity_section
from synthmed.evaluate.memorisation_section import memorisation_section
from synthmed.files import atomic_write_json

log = logging.getLogger(__name__)

Part = Literal["fidelity", "diversity", "memorisation", "usefulness", "condition_fidelity", "explanations"]
PARTS: tuple[str, ...] = ("fidelity", "diversity", "memorisation", "usefulness", "condition_fidelity", "explanations")
CLASSIFIER_PARTS = ("usefulness", "condition_fidelity", "explanations")
PART_ALIASES = {
    "tstr": "usefulness",
    "condition": "condition_fidelity",
    "explain": "explanations",
    "memorization": "memorisation",
    "privacy": "memorisation",
}
METRICS_NAME = "metrics.json"
PRETRAINED_WEIGHTS = {"inception": INCEPTION_WEIGHTS, "xrv": XRV_WEIGHTS}


class EvalConfig(BaseModel):
    """Everything `synthmed evaluate` needs (validated at the edge; written into metrics.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    real_dir: Path = Field(description="prepared dataset (synthmed prepare) with train and test splits")
    synthetic_dir: Path = Field(description="image set with manifest.csv (synthmed sample or any folder)")
    out_dir: Path
    extractor: Literal["domain", "inception", "xrv"] = "domain"
    weights_path: Path | None = None
    cache_dir: Path | None = Field(default=None, description="default $SYNTHMED_CACHE or ~/.cache/synthmed")
    size_px: int | None = Field(default=None, ge=8, description="evaluation image size; default the dataset's")
    max_real: int | None = Field(default=None, ge=2, description="seeded random cap on real train (and held-out)")
    max_synthetic: int | None = Field(default=None, ge=2, description="seeded random cap on synthetic images")
    skip: tuple[Part, ...] = ()
    seed: int = 0
    bootstrap_samples: int = Field(default=50, ge=0)
    encoder_epochs: int = Field(default=4, ge=1)
    tstr_archs: tuple[str, ...] = Field(default=("small_cnn",), min_length=1)
    tstr_seeds: tuple[int, ...] = Field(default=(0, 1, 2), min_length=1)
    tstr_epochs: int = Field(default=20, ge=1)
    tstr_max_train_images: int | None = Field(default=None, ge=2, description="seeded cap per TSTR training set")
    tstr_weights_dir: Path | None = Field(default=None, description="folder with torchvision ImageNet .pth files")
    tstr_overrides: dict = Field(default_factory=dict, description="extra TSTRConfig fields (Python API only)")
    explain_images: int = Field(default=8, ge=1)
    lime_samples: int = Field(default=300, ge=10)

    @field_validator("skip", mode="before")
    @classmethod
    def _aliases(cls, value):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(PART_ALIASES.get(str(v).strip(), str(v).strip()) for v in value)

    @field_validator("tstr_seeds", "tstr_archs")
    @classmethod
    def _distinct(cls, values: tuple, info) -> tuple:
        from synthmed.evaluate.tstr import distinct

        return distinct(values, what=info.field_name)


@dataclass(frozen=True)
class RealSplits:
    """The real images, loaded with the dataset's classes."""

    train: ImageArrays
    val: ImageArrays | None
    test: ImageArrays | None

    @property
    def heldout(self) -> ImageArrays | None:
        """The real-vs-real floor and copy calibration set: val (carved from the training pool, so drawn like
        train), else test (a dataset's official test split can come from elsewhere, e.g. PneumoniaMNIST's)."""
        return self.val if self.val is not None else self.test

    @property
    def heldout_name(self) -> str | None:
        return "val" if self.val is not None else "test" if self.test is not None else None


@overload
def _cap(arrays: ImageArrays, limit: int | None, rng: np.random.Generator) -> ImageArrays: ...


@overload
def _cap(arrays: None, limit: int | None, rng: np.random.Generator) -> None: ...


def _cap(arrays: ImageArrays | None, limit: int | None, rng: np.random.Generator) -> ImageArrays | None:
    if arrays is None or limit is None or len(arrays) <= limit:
        return arrays
    return arrays.subset(np.sort(rng.choice(len(arrays), limit, replace=False)))


class _LoadOptions(TypedDict):
    """The options every split (and the synthetic set) is loaded with."""

    classes: list[str]
    size_px: int
    channels: int


def _load_split(folder: Path, split: str, *, classes: list[str], size_px: int, channels: int) -> ImageArrays | None:
    try:
        return load_image_arrays(folder, split=split, classes=classes, size_px=size_px, channels=channels)
    except ValueError as exc:
        if "has no images" in str(exc):
            return None
        raise


def load_inputs(config: EvalConfig) -> tuple[RealSplits, ImageArrays, dict]:
    """Real train/val/test and synthetic images at one size and channel count, labels aligned to the real classes."""
    info = read_dataset_info(config.real_dir)
    size_px = config.size_px or info.image_size_px
    kwargs: _LoadOptions = {"classes": list(info.classes), "size_px": size_px, "channels": info.channels}
    train = _load_split(config.real_dir, "train", **kwargs)
    if train is None or len(train) < 2:
        raise ValueError(
            f"{config.real_dir} has fewer than 2 training images; evaluation compares against the "
            f"real train split. Prepare the dataset with a train split (synthmed prepare)."
        )
    synthetic = load_image_arrays(config.synthetic_dir, **kwargs)
    if len(synthetic) < 2:
        raise ValueError(f"{config.synthetic_dir} holds {len(synthetic)} image(s); evaluation needs at least 2.")
    rng = np.random.default_rng(config.seed)
    real = RealSplits(
        train=_cap(train, config.max_real, rng),
        val=_cap(_load_split(config.real_dir, "val", **kwargs), config.max_real, rng),
        test=_cap(_load_split(config.real_dir, "test", **kwargs), config.max_real, rng),
    )
    synthetic = _cap(synthetic, config.max_synthetic, rng)
    counts = {
        name: (int(len(a)) if a is not None else 0)
        for name, a in (
            ("real_train", real.train),
            ("real_val", real.val),
            ("real_test", real.test),
            ("synthetic", synthetic),
        )
    }
    per_class = {
        name: {c: int((a.labels == i).sum()) for i, c in enumerate(info.classes)}
        for name, a in (("real_train", real.train), ("synthetic", synthetic))
        if a is not None
    }
    inputs = {
        "real_dataset": str(Path(config.real_dir).resolve()),
        "synthetic_set": str(Path(config.synthetic_dir).resolve()),
        "dataset_name": info.name,
        "modality": info.modality,
        "classes": list(info.classes),
        "channels": info.channels,
        "image_size_px": int(size_px),
        "dataset_image_size_px": info.image_size_px,
        "resize_method": "bilinear (PIL) on load" if size_px != info.image_size_px else "none",
        "synthetic_as_stored": (stored := _as_stored(config.synthetic_dir)),
        "synthetic_conversion": _conversion_note(stored, size_px=int(size_px), channels=info.channels),
        "counts": counts,
        "per_class_counts": per_class,
        "heldout_split": real.heldout_name,
        "config": config.model_dump(mode="json"),
    }
    return real, synthetic, inputs


def _as_stored(folder: Path, *, most: int = 500) -> dict:
    """Sizes (px) and modes of the synthetic files as stored (headers of up to `most` files), with counts."""
    from PIL import Image

    from synthmed.data.manifest import load_image_set

    sizes: dict[str, int] = {}
    modes: dict[str, int] = {}
    for path in load_image_set(folder)["abs_path"][:most]:
        try:
            with Image.open(path) as img:
                size, mode = "x".join(map(str, img.size)), img.mode
        except OSError:
            continue  # unreadable files were refused while loading; DICOM and others are not PIL images
        sizes[size] = sizes.get(size, 0) + 1
        modes[mode] = modes.get(mode, 0) + 1
    return {"sizes_px": sizes, "modes": modes}


def _conversion_note(stored: dict, *, size_px: int, channels: int) -> str:
    """What loading did to the synthetic images (resized from another size, converted from another mode), or 'none'."""
    notes = []
    other_sizes = sorted(s for s in stored["sizes_px"] if s != f"{size_px}x{size_px}")
    if other_sizes:
        notes.append(f"resized from {', '.join(other_sizes)} to {size_px}x{size_px} px (bilinear, PIL)")
    wanted = {"L", "I;16", "I;16B", "I"} if channels == 1 else {"RGB"}
    other_modes = sorted(m for m in stored["modes"] if m not in wanted)
    if other_modes:
        notes.append(f"converted from mode {', '.join(other_modes)} to {'grey' if channels == 1 else 'RGB'}")
    if notes:
        log.warning("synthetic images %s, to match the real dataset", "; ".join(notes))
    return "; ".join(notes) or "none"


def build_extractor(config: EvalConfig, real: RealSplits) -> FeatureExtractor:
    """The chosen feature extractor: the domain encoder (trained or cached) or a local pretrained network."""
    if config.extractor == "domain":
        settings = EncoderSettings(
            input_size_px=min(int(real.train.pixels.shape[-1]), 64), epochs=config.encoder_epochs, seed=config.seed
        )
        return load_or_train_domain_extractor(real.train, real.val, settings=settings, cache_dir=config.cache_dir)
    return PRETRAINED_EXTRACTORS[config.extractor](weights_path=config.weights_path, cache_dir=config.cache_dir)


class _Recorder:
    """metrics.json being filled section by section (rewritten atomically after each, so nothing is lost)."""

    def __init__(self, out_dir: Path, inputs: dict):
        self.path = out_dir / METRICS_NAME
        self.metrics: dict = {"inputs": inputs, **{part: {"status": "pending"} for part in PARTS}, "timings_s": {}}
        self.failed: list[str] = []
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, sections.to_native(self.metrics))

    @contextmanager
    def timed(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics["timings_s"][name] = round(time.perf_counter() - started, 3)
            self.save()

    def run_section(self, part: str, fn, *args, **kwargs) -> None:
        with self.timed(part):
            try:
                self.metrics[part] = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others
                # A missing package (ImportError) fails its part too: exit code 1, never a quiet "not available".
                log.exception("%s failed", part)
                self.failed.append(part)
                self.metrics[part] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def evaluate(config: EvalConfig) -> Path:
    """Run every part not in `config.skip` and return the path of EVAL_DIR/metrics.json.

    Input problems (missing folders, unknown labels, no training images) raise before anything is
    written; a part that fails at run time is recorded as {"status": "failed", "error": ...} and
    the other parts still run.
    """
    started = time.perf_counter()
    if config.extractor in PRETRAINED_WEIGHTS and {"fidelity", "memorisation"} - set(config.skip):
        # Refuse a missing weights file before any work.
        resolve_weights(
            PRETRAINED_WEIGHTS[config.extractor], weights_path=config.weights_path, cache_dir=config.cache_dir
        )
    out_dir = Path(config.out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / METRICS_NAME).is_file():
        raise FileExistsError(
            f"--out {out_dir} holds other files (not an earlier evaluation): evaluate writes metrics.json and "
            f"section folders there. Choose an empty or new folder."
        )
    load_started = time.perf_counter()
    real, synthetic, inputs = load_inputs(config)
    wanted = [p for p in PARTS if p not in config.skip]
    extractor_started = time.perf_counter()
    # Built before anything is written: a wrong weights file is refused without leaving a partial EVAL_DIR.
    extractor = build_extractor(config, real) if {"fidelity", "memorisation"} & set(wanted) else None
    extractor_s = time.perf_counter() - extractor_started
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder = _Recorder(out_dir, inputs)
    recorder.metrics["timings_s"]["load"] = round(time.perf_counter() - load_started - extractor_s, 3)
    for part in config.skip:
        recorder.metrics[part] = {"status": "skipped", "note": "skipped with --skip"}
    if len(real.train.classes) < 2:  # nothing to classify: the classifier parts cannot say anything
        for name in [p for p in CLASSIFIER_PARTS if p in wanted]:
            recorder.metrics[name] = {
                "status": "not available",
                "note": f"the real dataset has one class ({real.train.classes[0]}): classifiers need at least two",
            }
        wanted = [p for p in wanted if p not in CLASSIFIER_PARTS]

    features = None
    if extractor is not None:
        with recorder.timed("features"):
            features = sections.extract_features(extractor, real, synthetic)
        recorder.metrics["timings_s"]["features"] += round(extractor_s, 3)
    if "fidelity" in wanted:
        recorder.run_section(
            "fidelity",
            fidelity_section,
            real=real,
            synthetic=synthetic,
            features=features,
            config=config,
            out_dir=out_dir,
        )
    if "diversity" in wanted:
        recorder.run_section(
            "diversity", sections.diversity_section, real=real, synthetic=synthetic, config=config, out_dir=out_dir
        )
    if "memorisation" in wanted:
        recorder.run_section(
            "memorisation",
            memorisation_section,
            real=real,
            synthetic=synthetic,
            features=features,
            config=config,
            out_dir=out_dir,
        )
    if "usefulness" in wanted:
        recorder.run_section(
            "usefulness", sections.usefulness_section, real=real, synthetic=synthetic, config=config, out_dir=out_dir
        )
    if {"condition_fidelity", "explanations"} & set(wanted):
        sections.classifier_sections(
            recorder, wanted=wanted, real=real, synthetic=synthetic, config=config, out_dir=out_dir
        )
    recorder.metrics["timings_s"]["total"] = round(time.perf_counter() - started, 3)
    recorder.metrics["status"] = {"failed_parts": recorder.failed}
    recorder.save()
    log.info("evaluation written to %s", recorder.path)
    return recorder.path
