"""The memorisation section of metrics.json: nearest training images, calibrated copy flags, leakage, top pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate import plots
from synthmed.evaluate.memorisation import MemorisationConfig, find_copies, memorisation_verdict
from synthmed.evaluate.sections import figure_entry
from synthmed.files import atomic_write_bytes


def _similarity_summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    return {"median": float(np.median(values)), "q99": float(np.quantile(values, 0.99)), "max": float(np.max(values))}


def memorisation_section(*, real, synthetic: ImageArrays, features: dict | None, config, out_dir: Path) -> dict:
    """Nearest training image of each synthetic image, calibrated copy thresholds, flagged share, leakage, top pairs."""
    mconfig = MemorisationConfig()
    heldout = real.heldout
    result = find_copies(
        train_pixels=real.train.pixels,
        heldout_pixels=heldout.pixels if heldout is not None else None,
        synthetic_pixels=synthetic.pixels,
        train_features=features["train"] if features else None,
        heldout_features=features["heldout"] if features else None,
        synthetic_features=features["synthetic"] if features else None,
        config=mconfig,
        rng=np.random.default_rng(config.seed),
    )
    pix, flagged = result["pixel"]["nearest"], result["flagged"]
    section_dir = out_dir / "memorisation"
    table = pd.DataFrame(
        {
            "synthetic_id": synthetic.ids,
            "label": [synthetic.classes[i] for i in synthetic.labels],
            "nearest_train_id_pixel": [real.train.ids[i] for i in pix["train_index"]],
            "pixel_similarity": pix["similarity"],
            "matched_flipped": pix["flipped"],
            "angle_deg": np.round(pix["angle_deg"], 2),
            "zoom": np.round(pix["zoom"], 3),
            "shift_dy_px": np.round(pix["shift_dy"], 2),
            "shift_dx_px": np.round(pix["shift_dx"], 2),
            "noise_fraction": np.round(pix["noise_fraction"], 3),
            "flagged": flagged,
        }
    )
    thresholds = {"pixel": result["pixel"]["threshold"]}
    similarity = {"pixel": _similarity_summary(pix["similarity"])}
    calibration = {"pixel": _similarity_summary(result["pixel"]["calibration_similarity"])}
    heldout_above = {"pixel": float(np.mean(result["pixel"]["calibration_similarity"] >= thresholds["pixel"]))}
    if "feature" in result:
        feat = result["feature"]
        table["nearest_train_id_feature"] = [real.train.ids[i] for i in feat["nearest"]["train_index"]]
        table["feature_cosine"] = feat["nearest"]["similarity"]
        thresholds["feature (reported, does not flag)"] = feat["threshold"]
        similarity["feature"] = _similarity_summary(feat["nearest"]["similarity"])
        calibration["feature"] = _similarity_summary(feat["calibration_similarity"])
    atomic_write_bytes(section_dir / "nearest.csv", table.to_csv(index=False).encode())
    order = np.argsort(-pix["similarity"])[: mconfig.top_pairs]
    top = [
        {
            "synthetic_index": int(i),
            "synthetic_id": synthetic.ids[i],
            "train_index": int(pix["train_index"][i]),
            "train_id": real.train.ids[pix["train_index"][i]],
            "similarity": float(pix["similarity"][i]),
            "flipped": bool(pix["flipped"][i]),
            "angle_deg": round(float(pix["angle_deg"][i]), 2),
            "zoom": round(float(pix["zoom"][i]), 3),
            "shift_px": [round(float(pix["shift_dy"][i]), 2), round(float(pix["shift_dx"][i]), 2)],
            "flagged": bool(flagged[i]),
        }
        for i in order
    ]
    leakage = result["leakage"]
    pairs = zip(leakage.pop("heldout_index"), leakage.pop("train_index"))
    leaked_pairs = [{"heldout_id": heldout.ids[h], "train_id": real.train.ids[t]} for h, t in pairs] if heldout else []
    leakage["pairs"] = leaked_pairs[:50]
    source = heldout if result["heldout_used"] else real.train
    leakage["suspected"] = [
        {"image_id": source.ids[row.pop("index")], "train_id": real.train.ids[row.pop("train_index")], **row}
        for row in leakage["suspected"][:50]
    ]
    figures = [
        figure_entry(
            plots.plot_pairs(synthetic.pixels, real.train.pixels, top, section_dir / "top_pairs.png"),
            out_dir,
            "Synthetic images most similar to a training image (left) beside that training image (right)",
        ),
        figure_entry(
            plots.plot_similarity_histogram(
                pix["similarity"],
                result["pixel"]["calibration_similarity"],
                thresholds["pixel"],
                section_dir / "pixel_similarity.png",
                what="pixel correlation",
            ),
            out_dir,
            "Nearest-training-image similarity: synthetic vs held-out real, with the copy threshold",
        ),
    ]
    per_class: dict[str, dict] = {
        name: {"n": int((synthetic.labels == i).sum()), "n_flagged": int(flagged[synthetic.labels == i].sum())}
        for i, name in enumerate(synthetic.classes)
    }
    for entry in per_class.values():
        entry["share_flagged"] = entry["n_flagged"] / entry["n"] if entry["n"] else None
    n_flagged = int(flagged.sum())
    rests_on = {
        "image_size_px": int(real.train.pixels.shape[-1]),
        "n_real_train": len(real.train),
        "n_calibration": result["n_calibration"],
        "heldout_used": result["heldout_used"],
        "n_synthetic": len(synthetic),
        "search_size_px": mconfig.search.fine_size_px,
        "seed": config.seed,
    }
    return {
        "method": {
            "pixel": mconfig.record(),
            "pixel_description": "normalised correlation of band-passed grey images, maximised over flips, "
            "rotations, zooms and shifts of the training images (synthmed.evaluate."
            "copy_search)",
            "feature": (features["extractor"] | {"similarity": "cosine"}) if features else None,
        },
        "calibration": result["calibration"],
        "n_calibration": result["n_calibration"],
        "leakage": leakage,
        "thresholds": thresholds,
        "calibration_similarity": calibration,
        "calibration_share_above_threshold": heldout_above,
        "synthetic_similarity": similarity,
        "n_real_train": len(real.train),
        "n_synthetic": len(synthetic),
        "n_flagged": n_flagged,
        "share_flagged": n_flagged / len(synthetic),
        "per_class": per_class,
        "top_pairs": [{k: v for k, v in row.items() if not k.endswith("_index")} for row in top],
        "nearest_csv": "memorisation/nearest.csv",
        "rests_on": rests_on,
        "verdict": memorisation_verdict(
            share_flagged=n_flagged / len(synthetic),
            n_flagged=n_flagged,
            n_synthetic=len(synthetic),
            leakage=leakage,
            rests_on=rests_on,
        ),
        "status": (
            "info"
            if result["too_few_calibration"]
            else "good"
            if n_flagged == 0
            else "fair"
            if n_flagged / len(synthetic) < 0.01
            else "poor"
        ),
        "figures": figures,
    }
