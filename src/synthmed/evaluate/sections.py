"""Each metrics.json section built from loaded images: numbers, a plain-English verdict and figures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate import plots
from synthmed.evaluate.diversity import DiversityConfig, compute_diversity, diversity_status, diversity_verdict
from synthmed.evaluate.features import FeatureExtractor, describe
from synthmed.evaluate.fidelity import FidelityConfig, compute_fidelity, fidelity_status, fidelity_verdict
from synthmed.evaluate.memorisation import MemorisationConfig, find_copies, memorisation_verdict
from synthmed.files import atomic_write_bytes

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


def _figure(path: Path, out_dir: Path, title: str) -> dict:
    return {"title": title, "path": path.relative_to(out_dir).as_posix()}


def extract_features(extractor: FeatureExtractor, real, synthetic: ImageArrays) -> dict:
    """Features of real train, held-out real and synthetic images, with the extractor's record."""
    heldout = real.heldout
    record = describe(extractor)
    if getattr(extractor, "record", None):
        record["encoder_training"] = extractor.record
    return {"extractor": record, "train": extractor(real.train.pixels), "synthetic": extractor(synthetic.pixels),
            "heldout": extractor(heldout.pixels) if heldout is not None else None}


def fidelity_section(*, real, synthetic: ImageArrays, features: dict, config, out_dir: Path) -> dict:
    """FID / KID / PRDC per class and overall, beside the real-vs-real floor."""
    heldout = real.heldout
    if heldout is None or features["heldout"] is None:
        return {"status": "not available", "note": "the real dataset has no val or test split to measure the "
                                                  "real-vs-real floor; prepare it with held-out splits"}
    fconfig = FidelityConfig(bootstrap_samples=config.bootstrap_samples, seed=config.seed)
    result = compute_fidelity(train=features["train"], train_labels=real.train.labels, heldout=features["heldout"],
                              heldout_labels=heldout.labels, synthetic=features["synthetic"],
                              synthetic_labels=synthetic.labels, classes=list(real.train.classes), config=fconfig)
    section_dir = out_dir / "fidelity"
    figures = [_figure(plots.plot_fid_bars(result, section_dir / "fid.png"), out_dir,
                       "FID: synthetic vs real train, beside held-out real vs real train (floor)")]
    if "precision" in result["overall"]["synthetic"]:
        figures.append(_figure(plots.plot_prdc(result, section_dir / "prdc.png"), out_dir,
                               "Precision, recall, density, coverage (Naeem et al. 2020)"))
    figures.append(_figure(plots.plot_feature_pca(features["train"], features["synthetic"], section_dir / "pca.png",
                                                  rng=np.random.default_rng(config.seed)), out_dir,
                           "Features of real and synthetic images (first two principal axes of the real ones)"))
    return {"features": features["extractor"] | {"n_real_train": len(real.train), "n_heldout": len(heldout),
                                                 "n_synthetic": len(synthetic)},
            **result, "verdict": fidelity_verdict(result), "status": fidelity_status(result), "figures": figures}


def diversity_section(*, real, synthetic: ImageArrays, config, out_dir: Path) -> dict:
    """Within-class MS-SSIM of synthetic images beside real training images."""
    result = compute_diversity(real_pixels=real.train.pixels, real_labels=real.train.labels,
                               synthetic_pixels=synthetic.pixels, synthetic_labels=synthetic.labels,
                               classes=list(real.train.classes), config=DiversityConfig(seed=config.seed))
    values = result.pop("_values")
    path = plots.plot_msssim(values, out_dir / "diversity" / "msssim.png")
    verdict, status = diversity_verdict(result), diversity_status(result)
    result["measured_on"] = (f"pixels at {real.train.pixels.shape[-1]} px as loaded (inputs.resize_method), "
                             f"scaled to [0, 1]; no feature extractor")
    return result | {"verdict": verdict, "status": status,
                     "figures": [_figure(path, out_dir, "Within-class MS-SSIM of random pairs (higher = more alike)")]}


def _similarity_summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    return {"median": float(np.median(values)), "q99": float(np.quantile(values, 0.99)), "max": float(np.max(values))}


def memorisation_section(*, real, synthetic: ImageArrays, features: dict | None, config, out_dir: Path) -> dict:
    """Nearest training image of each synthetic image, calibrated copy thresholds, flagged share, top pairs."""
    mconfig = MemorisationConfig()
    heldout = real.heldout
    result = find_copies(train_pixels=real.train.pixels, heldout_pixels=heldout.pixels if heldout is not None else None,
                         synthetic_pixels=synthetic.pixels,
                         train_features=features["train"] if features else None,
                         heldout_features=features["heldout"] if features else None,
                         synthetic_features=features["synthetic"] if features else None,
                         config=mconfig, rng=np.random.default_rng(config.seed))
    pix, flagged = result["pixel"]["nearest"], result["flagged"]
    section_dir = out_dir / "memorisation"
    table = pd.DataFrame({
        "synthetic_id": synthetic.ids, "label": [synthetic.classes[i] for i in synthetic.labels],
        "nearest_train_id_pixel": [real.train.ids[i] for i in pix["train_index"]],
        "pixel_similarity": pix["similarity"], "matched_flipped": pix["flipped"],
        "shift_dy_px": pix["shift_dy"], "shift_dx_px": pix["shift_dx"], "flagged": flagged})
    thresholds = {"pixel": result["pixel"]["threshold"]}
    similarity = {"pixel": _similarity_summary(pix["similarity"])}
    calibration = {"pixel": _similarity_summary(result["pixel"]["calibration_similarity"])}
    heldout_above = {"pixel": float(np.mean(result["pixel"]["calibration_similarity"] >= thresholds["pixel"]))}
    if "feature" in result:
        feat = result["feature"]
        table["nearest_train_id_feature"] = [real.train.ids[i] for i in feat["nearest"]["train_index"]]
        table["feature_cosine"] = feat["nearest"]["similarity"]
        thresholds["feature"] = feat["threshold"]
        similarity["feature"] = _similarity_summary(feat["nearest"]["similarity"])
        calibration["feature"] = _similarity_summary(feat["calibration_similarity"])
        heldout_above["feature"] = float(np.mean(feat["calibration_similarity"] >= feat["threshold"]))
    atomic_write_bytes(section_dir / "nearest.csv", table.to_csv(index=False).encode())
    order = np.argsort(-pix["similarity"])[:mconfig.top_pairs]
    top = [{"synthetic_index": int(i), "synthetic_id": synthetic.ids[i], "train_index": int(pix["train_index"][i]),
            "train_id": real.train.ids[pix["train_index"][i]], "similarity": float(pix["similarity"][i]),
            "flipped": bool(pix["flipped"][i]), "shift_px": [int(pix["shift_dy"][i]), int(pix["shift_dx"][i])],
            "flagged": bool(flagged[i])} for i in order]
    figures = [
        _figure(plots.plot_pairs(synthetic.pixels, real.train.pixels, top, section_dir / "top_pairs.png"), out_dir,
                "Synthetic images most similar to a training image (left) beside that training image (right)"),
        _figure(plots.plot_similarity_histogram(pix["similarity"], result["pixel"]["calibration_similarity"],
                                                thresholds["pixel"], section_dir / "pixel_similarity.png",
                                                what="pixel correlation"), out_dir,
                "Nearest-training-image pixel correlation: synthetic vs held-out real, with the copy threshold")]
    per_class = {name: {"n": int((synthetic.labels == i).sum()), "n_flagged": int(flagged[synthetic.labels == i].sum())}
                 for i, name in enumerate(synthetic.classes)}
    for entry in per_class.values():
        entry["share_flagged"] = entry["n_flagged"] / entry["n"] if entry["n"] else None
    n_flagged = int(flagged.sum())
    return {
        "method": {"pixel": {k: getattr(mconfig, k) for k in mconfig.__dataclass_fields__},
                   "pixel_description": "normalised correlation of grey, downsampled, blurred images, max over shifts "
                                        "and horizontal flips of the training images",
                   "feature": (features["extractor"] | {"similarity": "cosine"}) if features else None},
        "calibration": result["calibration"], "n_calibration": result["n_calibration"], "thresholds": thresholds,
        "calibration_similarity": calibration, "calibration_share_above_threshold": heldout_above,
        "synthetic_similarity": similarity, "n_real_train": len(real.train), "n_synthetic": len(synthetic),
        "n_flagged": n_flagged, "share_flagged": n_flagged / len(synthetic), "per_class": per_class,
        "top_pairs": [{k: v for k, v in row.items() if not k.endswith("_index")} for row in top],
        "nearest_csv": "memorisation/nearest.csv",
        "verdict": memorisation_verdict(share_flagged=n_flagged / len(synthetic), n_flagged=n_flagged,
                                        n_synthetic=len(synthetic)),
        "status": "good" if n_flagged == 0 else "fair" if n_flagged / len(synthetic) < 0.01 else "poor",
        "figures": figures,
    }


def _tstr_config(config, size_px: int):
    from synthmed.evaluate.tstr import TSTRConfig

    return TSTRConfig(archs=tuple(config.tstr_archs), seeds=tuple(config.tstr_seeds), epochs=config.tstr_epochs,
                      image_size_px=size_px, weights_dir=config.tstr_weights_dir,
                      max_train_images=config.tstr_max_train_images, **config.tstr_overrides)


def usefulness_section(*, real, synthetic: ImageArrays, config, out_dir: Path) -> dict:
    """Train-on-synthetic / test-on-real classifiers (synthmed.evaluate.tstr)."""
    from synthmed.evaluate.tstr import run_tstr

    if real.test is None:
        return {"status": "not available", "note": "the real dataset has no test split to test classifiers on"}
    return run_tstr(real_train=real.train, real_val=real.val, real_test=real.test, synthetic=synthetic,
                    config=_tstr_config(config, int(real.train.pixels.shape[-1])), out_dir=out_dir / "usefulness")


def classifier_sections(recorder, *, wanted: list[str], real, synthetic: ImageArrays, config, out_dir: Path) -> None:
    """Condition fidelity and explanations, on the usefulness run's own classifiers (each fitted once)."""
    from synthmed.evaluate.shared_classifiers import SharedClassifiers

    shared = SharedClassifiers(config=_tstr_config(config, int(real.train.pixels.shape[-1])), real_train=real.train,
                               real_val=real.val, synthetic=synthetic, usefulness=recorder.metrics.get("usefulness"),
                               eval_dir=out_dir)

    def condition() -> dict:
        from synthmed.evaluate.condition import condition_fidelity

        scored = {"synthetic": len(synthetic)} | ({"real test": len(real.test)} if real.test is not None else {})
        section = condition_fidelity(classifier=shared.get("real"), synthetic=synthetic, reference=real.test,
                                     out_dir=out_dir / "condition_fidelity", rests_on=shared.rests_on(["real"],
                                                                                                      scored=scored))
        return section | {"classifier_source": shared.sources["real"]}

    def explanations() -> dict:
        from synthmed.evaluate.explain import explain

        shown = real.heldout if real.heldout is not None else real.train
        model, synthetic_model = shared.get("real"), shared.get("synthetic")
        kind = "real held-out" if real.heldout is not None else "real training"
        rests_on = shared.rests_on(["real", "synthetic"], scored={kind: len(shown)},
                                   note=f"maps of up to {config.explain_images} {kind} and synthetic images, LIME with "
                                        f"{config.lime_samples} samples")
        section = explain(model=model, synthetic_model=synthetic_model, real=shown, synthetic=synthetic,
                          out_dir=out_dir / "explanations", max_images_per_set=config.explain_images,
                          lime_num_samples=config.lime_samples, rests_on=rests_on)
        return section | {"classifier_source": dict(shared.sources)}

    if "condition_fidelity" in wanted:
        recorder.run_section("condition_fidelity", condition)
    if "explanations" in wanted:
        recorder.run_section("explanations", explanations)
