"""Each metrics.json section built from loaded images: numbers, a plain-English verdict and figures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate import plots
from synthmed.evaluate.diversity import DiversityConfig, compute_diversity, diversity_status, diversity_verdict
from synthmed.evaluate.features import FeatureExtractor, describe

log = logging.getLogger(__name__)


def to_native(obj):
    """Numpy scalars/arrays and tuples -> plain JSON types (recursively); NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): to_native(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_native(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_native(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def figure_entry(path: Path, out_dir: Path, title: str) -> dict:
    """A metrics.json figure record: its title and its path relative to EVAL_DIR."""
    return {"title": title, "path": path.relative_to(out_dir).as_posix()}


def extract_features(extractor: FeatureExtractor, real, synthetic: ImageArrays) -> dict:
    """Features of real train, held-out real and synthetic images, with the extractor's record."""
    heldout = real.heldout
    record = describe(extractor)
    training = getattr(extractor, "record", None)  # only the domain encoder has one (not in FeatureExtractor)
    if training:
        record["encoder_training"] = training
    return {
        "extractor": record,
        "train": extractor(real.train.pixels),
        "synthetic": extractor(synthetic.pixels),
        "heldout": extractor(heldout.pixels) if heldout is not None else None,
    }


def diversity_section(*, real, synthetic: ImageArrays, config, out_dir: Path) -> dict:
    """Within-class MS-SSIM of synthetic images beside real training images."""
    result = compute_diversity(
        real_pixels=real.train.pixels,
        real_labels=real.train.labels,
        synthetic_pixels=synthetic.pixels,
        synthetic_labels=synthetic.labels,
        classes=list(real.train.classes),
        config=DiversityConfig(seed=config.seed),
    )
    values = result.pop("_values")
    path = plots.plot_msssim(values, out_dir / "diversity" / "msssim.png")
    verdict, status = diversity_verdict(result), diversity_status(result)
    result["measured_on"] = (
        f"pixels at {real.train.pixels.shape[-1]} px as loaded (inputs.resize_method), "
        f"scaled to [0, 1]; no feature extractor"
    )
    n_synth = {name: entry["synthetic"]["n_images"] for name, entry in result["per_class"].items()}
    result["rests_on"] = {
        "text": (
            f"MS-SSIM of up to {DiversityConfig().pairs_per_class} random pairs per class "
            f"({', '.join(f'{c}: {n} synthetic' for c, n in n_synth.items())}; "
            f"{len(real.train)} real training images) at {real.train.pixels.shape[-1]} px; "
            f"seed {config.seed}."
        ),
        "n_synthetic_per_class": n_synth,
        "image_size_px": int(real.train.pixels.shape[-1]),
    }
    return result | {
        "verdict": verdict,
        "status": status,
        "figures": [figure_entry(path, out_dir, "Within-class MS-SSIM of random pairs (higher = more alike)")],
    }


def _tstr_config(config, size_px: int):
    from synthmed.evaluate.tstr import TSTRConfig

    return TSTRConfig(
        archs=tuple(config.tstr_archs),
        seeds=tuple(config.tstr_seeds),
        epochs=config.tstr_epochs,
        image_size_px=size_px,
        weights_dir=config.tstr_weights_dir,
        max_train_images=config.tstr_max_train_images,
        **config.tstr_overrides,
    )


def usefulness_section(*, real, synthetic: ImageArrays, config, out_dir: Path) -> dict:
    """Train-on-synthetic / test-on-real classifiers (synthmed.evaluate.tstr)."""
    from synthmed.evaluate.tstr import run_tstr

    if real.test is None:
        return {"status": "not available", "note": "the real dataset has no test split to test classifiers on"}
    return run_tstr(
        real_train=real.train,
        real_val=real.val,
        real_test=real.test,
        synthetic=synthetic,
        config=_tstr_config(config, int(real.train.pixels.shape[-1])),
        out_dir=out_dir / "usefulness",
    )


def classifier_sections(recorder, *, wanted: list[str], real, synthetic: ImageArrays, config, out_dir: Path) -> None:
    """Condition fidelity and explanations, on the usefulness run's own classifiers (each fitted once)."""
    from synthmed.evaluate.shared_classifiers import SharedClassifiers

    shared = SharedClassifiers(
        config=_tstr_config(config, int(real.train.pixels.shape[-1])),
        real_train=real.train,
        real_val=real.val,
        synthetic=synthetic,
        usefulness=recorder.metrics.get("usefulness"),
        eval_dir=out_dir,
    )

    def condition() -> dict:
        from synthmed.evaluate.condition import condition_fidelity

        scored = {"synthetic": len(synthetic)} | ({"real test": len(real.test)} if real.test is not None else {})
        section = condition_fidelity(
            classifier=shared.get("real"),
            synthetic=synthetic,
            reference=real.test,
            out_dir=out_dir / "condition_fidelity",
            rests_on=shared.rests_on(["real"], scored=scored),
        )
        return section | {"classifier_source": shared.sources["real"]}

    def explanations() -> dict:
        from synthmed.evaluate.explain import explain

        shown = real.heldout if real.heldout is not None else real.train
        model, synthetic_model = shared.get("real"), shared.get("synthetic")
        kind = "real held-out" if real.heldout is not None else "real training"
        rests_on = shared.rests_on(
            ["real", "synthetic"],
            scored={kind: len(shown)},
            note=f"maps of up to {config.explain_images} {kind} and synthetic images, LIME with "
            f"{config.lime_samples} samples",
        )
        section = explain(
            model=model,
            synthetic_model=synthetic_model,
            real=shown,
            synthetic=synthetic,
            out_dir=out_dir / "explanations",
            max_images_per_set=config.explain_images,
            lime_num_samples=config.lime_samples,
            rests_on=rests_on,
        )
        return section | {"classifier_source": dict(shared.sources)}

    if "condition_fidelity" in wanted:
        recorder.run_section("condition_fidelity", condition)
    if "explanations" in wanted:
        recorder.run_section("explanations", explanations)
