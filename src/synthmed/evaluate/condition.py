"""Condition fidelity: does a real-trained classifier give each synthetic image its intended class?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.classifiers import predict_proba
from synthmed.evaluate.tstr_outputs import plot_confusion_panels
from synthmed.evaluate.tstr_verdict import attach_rests_on
from synthmed.files import atomic_write_json


def _scores(classifier, arrays: ImageArrays) -> dict:
    """Per-class agreement between intended and predicted class, plus the confusion matrix."""
    num_classes = len(arrays.classes)
    pred = predict_proba(classifier, arrays.pixels).argmax(axis=1)
    matrix = confusion_matrix(arrays.labels, pred, labels=np.arange(num_classes))
    per_class = {}
    for k, name in enumerate(arrays.classes):
        total = int(matrix[k].sum())
        per_class[name] = {"images": total, "accuracy": float(matrix[k, k] / total) if total else None}
    present = [v["accuracy"] for v in per_class.values() if v["accuracy"] is not None]
    return {
        "images": len(arrays),
        "accuracy": float((pred == arrays.labels).mean()),
        "balanced_accuracy": float(np.mean(present)),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def condition_fidelity(
    *,
    classifier,
    synthetic: ImageArrays,
    out_dir: Path,
    reference: ImageArrays | None = None,
    rests_on: dict | str | None = None,
) -> dict:
    """Score `synthetic` (labels = the class each image was generated for) with a real-trained `classifier`.

    `reference` (the real test split) gives the same numbers on real images, the ceiling to compare
    with. `rests_on` describes the classifier (arch, weights, resolution, seed, training images); without
    it the section names the classifier's arch and input size. Returns the "condition_fidelity" section
    of metrics.json (confusion matrices: rows = intended class, columns = predicted class).
    """
    if len(synthetic) == 0:
        raise ValueError("The synthetic set is empty; condition fidelity needs at least one image.")
    classes = list(getattr(classifier, "classes", synthetic.classes))
    for name, arrays in (("synthetic", synthetic), ("reference", reference)):
        if arrays is not None and list(arrays.classes) != classes:
            raise ValueError(
                f"The {name} set's classes {arrays.classes} differ from the classifier's {classes}; "
                f"load it with classes={classes}."
            )
    out_dir = Path(out_dir)
    section: dict = {"classes": classes, "synthetic": _scores(classifier, synthetic)}
    if reference is not None and len(reference):
        section["real_reference"] = _scores(classifier, reference)
    section["figures"] = [
        {
            "title": "Intended vs predicted class (rows sum to 100%)",
            "path": _plot(section, out_dir / "confusion.png", out_dir),
        }
    ]
    section.update(_verdict(section))
    if rests_on is None:
        rests_on = (
            f"{getattr(classifier, 'arch', type(classifier).__name__)} classifier at "
            f"{getattr(classifier, 'image_size_px', '?')} px; {len(synthetic):,} synthetic images"
            + (f", {len(reference):,} real test images." if reference is not None else ".")
        )
    attach_rests_on(section, rests_on)
    atomic_write_json(out_dir / "condition_fidelity.json", section)
    return section


def _verdict(section: dict) -> dict:
    synth = section["synthetic"]["balanced_accuracy"]
    worst = min((v["accuracy"], k) for k, v in section["synthetic"]["per_class"].items() if v["accuracy"] is not None)
    text = f"A classifier trained on real images recognises {synth:.0%} of synthetic images as their intended class"
    real = section.get("real_reference", {}).get("balanced_accuracy")
    if real is not None:
        text += f" (real test images: {real:.0%})"
        relative = synth / real if real else 0.0
    else:
        relative = synth
    text += f"; the weakest class is '{worst[1]}' ({worst[0]:.0%})."
    status = "good" if relative >= 0.9 else "fair" if relative >= 0.7 else "poor"
    chance = 1 / len(section["classes"])
    if real is not None and real < chance + 0.1:
        text += " The classifier is barely better than chance on real images, so this check says little."
        status = "info"
    return {"verdict": text, "status": status}


def _plot(section: dict, path: Path, out_dir: Path) -> str:
    panels = [("synthetic images", section["synthetic"]["confusion_matrix"])]
    if "real_reference" in section:
        panels.append(("real test images (reference)", section["real_reference"]["confusion_matrix"]))
    return plot_confusion_panels(panels, section["classes"], row_label="intended class", path=path, out_dir=out_dir)
