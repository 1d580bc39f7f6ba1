"""The fidelity section of metrics.json: panel distances to the real-vs-real floor, the verdict and its figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate import plots
from synthmed.evaluate.fidelity import FidelityConfig, compute_fidelity, prdc_indicators
from synthmed.evaluate.lowlevel import PANEL_DESCRIPTIONS
from synthmed.evaluate.panel_distance import (
    ALPHA,
    GOOD_RATIO,
    PanelDistanceConfig,
    Standardiser,
    compute_panel_distances,
    fidelity_panels,
    panel_status,
    panel_summary_status,
    worst_panel,
)
from synthmed.evaluate.sections import figure_entry

CLOSENESS = {
    "good": "about as close to the real training images as other real images are",
    "inconclusive": "further from the real training images than other real images are, by more than the "
    "margin, but with too few images to rule out chance",
    "fair": "somewhat further from the real training images than other real images are",
    "poor": "clearly different from real images",
}


def combined_features(panels: dict[str, dict[str, np.ndarray]], seed: int) -> dict[str, np.ndarray]:
    """All panels side by side, each rank-transformed on real train and weighted equally (divided by sqrt(dims))."""
    out: dict[str, list[np.ndarray]] = {"train": [], "heldout": [], "synthetic": []}
    for sets in panels.values():
        scaler = Standardiser(sets["train"], seed)
        weight = 1.0 / np.sqrt(sets["train"].shape[1])
        for key in out:
            out[key].append(scaler(sets[key]) * weight)
    return {key: np.concatenate(parts, axis=1) for key, parts in out.items()}


def _prdc(train: np.ndarray, other: np.ndarray, k: int) -> dict:
    if len(train) <= k or len(other) <= k:
        return {"note": f"too few images for precision/recall with k={k}"}
    return {name: float(values.mean()) for name, values in prdc_indicators(train, other, k=k).items()}


def fidelity_section(*, real, synthetic: ImageArrays, features: dict, config, out_dir: Path) -> dict:
    """Per-panel MMD ratios to the floor (the verdict), PRDC on all panels, and FID/KID on the semantic features."""
    heldout = real.heldout
    if heldout is None or features["heldout"] is None:
        return {
            "status": "not available",
            "note": "the real dataset has no val or test split to measure the "
            "real-vs-real floor; prepare it with held-out splits",
        }
    panels = fidelity_panels(
        train_pixels=real.train.pixels,
        heldout_pixels=heldout.pixels,
        synthetic_pixels=synthetic.pixels,
        semantic={key: features[key] for key in ("train", "heldout", "synthetic")},
    )
    classes = list(real.train.classes)
    distances = compute_panel_distances(
        panels=panels,
        train_labels=real.train.labels,
        heldout_labels=heldout.labels,
        synthetic_labels=synthetic.labels,
        classes=classes,
        config=PanelDistanceConfig(bootstrap_samples=config.bootstrap_samples, seed=config.seed),
    )
    combined = combined_features(panels, config.seed)
    k = FidelityConfig().nearest_k
    prdc = {
        "synthetic": _prdc(combined["train"], combined["synthetic"], k),
        "real_floor": _prdc(combined["train"], combined["heldout"], k),
        "features": "all panels, rank-transformed on real train, each weighted equally",
        "k": k,
    }
    semantic = compute_fidelity(
        train=features["train"],
        train_labels=real.train.labels,
        heldout=features["heldout"],
        heldout_labels=heldout.labels,
        synthetic=features["synthetic"],
        synthetic_labels=synthetic.labels,
        classes=classes,
        config=FidelityConfig(bootstrap_samples=config.bootstrap_samples, seed=config.seed),
    )
    rests_on = {
        "extractor": features["extractor"],
        "image_size_px": int(real.train.pixels.shape[-1]),
        "n_real_train": len(real.train),
        "n_heldout": len(heldout),
        "n_synthetic": len(synthetic),
        "heldout_split": getattr(real, "heldout_name", None),
        "seed": config.seed,
    }
    status = panel_summary_status(distances)
    section_dir = out_dir / "fidelity"
    statuses = {n: panel_status(p["overall"]) for n, p in distances["panels"].items()}
    panels_png = plots.plot_panel_ratios(distances["panels"], statuses, GOOD_RATIO, section_dir / "panels.png")
    pca_png = plots.plot_feature_pca(
        features["train"], features["synthetic"], section_dir / "pca.png", rng=np.random.default_rng(config.seed)
    )
    figures = [
        figure_entry(
            panels_png, out_dir, "Distance to real training images per panel, as a multiple of the real-vs-real floor"
        ),
        figure_entry(
            pca_png,
            out_dir,
            "Semantic features of real and synthetic images (first two principal axes of the real ones)",
        ),
    ]
    return {
        "panels": distances["panels"],
        "panel_descriptions": PANEL_DESCRIPTIONS,
        "panel_config": distances["config"],
        "thresholds": distances["thresholds"],
        "precision_recall_all_panels": prdc,
        "semantic_fid_kid_prdc": semantic,
        "rests_on": rests_on,
        "verdict": fidelity_verdict(distances, prdc=prdc, rests_on=rests_on),
        "panel_status": statuses,
        "status": "info" if status == "inconclusive" else status,
        "figures": figures,
    }


def fidelity_verdict(distances: dict, *, prdc: dict, rests_on: dict) -> str:
    """Plain English: how close, which aspect differs most, precision, and what the verdict rests on."""
    panels = distances["panels"]
    missing = sorted({c for p in panels.values() for c in p["overall"].get("classes_missing", [])})
    status = panel_summary_status(distances)
    parts = []
    if missing:
        parts.append(
            f"No synthetic image of class {', '.join(missing)}: the synthetic set misses a mode of the real data."
        )
    worst, ratio = worst_panel(distances)
    if worst is None and not missing:
        return "Too few images per class to compare the synthetic and real image distributions."
    if worst is not None:
        closeness = CLOSENESS.get(status, CLOSENESS["poor"])
        others = ", ".join(
            f"{name} {p['overall']['ratio_to_floor']['value']:.1f}x"
            for name, p in panels.items()
            if name != worst and "ratio_to_floor" in p["overall"]
        )
        text = f"The synthetic images are {closeness}"
        if panel_status(panels[worst]["overall"]) != "good":
            text += f", most of all in {PANEL_DESCRIPTIONS[worst].split(':')[0]} ({worst})"
        p_value = panels[worst]["overall"].get("permutation_p")
        chance = f", permutation p = {p_value:.3f}" if p_value is not None else ""
        text += (
            f": {worst} distance {ratio:.1f}x the real-vs-real floor (good up to {GOOD_RATIO:g}x, a difference "
            f"counted when p < {ALPHA:g}{chance}); {others or 'no other panel'}."
        )
        parts.append(text)
    synth, floor = prdc["synthetic"], prdc["real_floor"]
    if "precision" in synth and "precision" in floor:
        parts.append(
            f"On all panels together, {synth['precision']:.0%} of synthetic images fall among real ones "
            f"(held-out real: {floor['precision']:.0%}) and they cover {synth['coverage']:.0%} of real "
            f"images (held-out real: {floor['coverage']:.0%})."
        )
    extractor = rests_on["extractor"]
    parts.append(
        f"Rests on: {rests_on['n_synthetic']} synthetic, {rests_on['n_heldout']} held-out and "
        f"{rests_on['n_real_train']} training real images at {rests_on['image_size_px']} px; low-level panels "
        f"and {extractor.get('extractor', 'semantic')} features ({extractor.get('layer', '')}); "
        f"seed {rests_on['seed']}."
    )
    return " ".join(parts)
