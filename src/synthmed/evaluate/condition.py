"""Condition fidelity: does a real-trained classifier give each synthetic image its intended class?"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.classifiers import predict_proba
from synthmed.files import atomic_write_bytes, atomic_write_json


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
    return {"images": len(arrays), "accuracy": float((pred == arrays.labels).mean()),
            "balanced_accuracy": float(np.mean(present)), "per_class": per_class,
            "confusion_matrix": matrix.tolist()}


def condition_fidelity(*, classifier, synthetic: ImageArrays, out_dir: Path,
                       reference: ImageArrays | None = None) -> dict:
    """Score `synthetic` (labels = the class each image was generated for) with a real-trained `classifier`.

    `reference` (the real test split) gives the same numbers on real images, the ceiling to compare
    with. Returns the "condition_fidelity" section of metrics.json (confusion matrices: rows =
    intended class, columns = predicted class).
    """
    if len(synthetic) == 0:
        raise ValueError("The synthetic set is empty; condition fidelity needs at least one image.")
    classes = list(getattr(classifier, "classes", synthetic.classes))
    for name, arrays in (("synthetic", synthetic), ("reference", reference)):
        if arrays is not None and list(arrays.classes) != classes:
            raise ValueError(f"The {name} set's classes {arrays.classes} differ from the classifier's {classes}; "
                             f"load it with classes={classes}.")
    out_dir = Path(out_dir)
    section: dict = {"classes": classes, "synthetic": _scores(classifier, synthetic)}
    if reference is not None and len(reference):
        section["real_reference"] = _scores(classifier, reference)
    section["figures"] = [{"title": "Intended vs predicted class (rows sum to 100%)",
                           "path": _plot(section, out_dir / "confusion.png", out_dir)}]
    section.update(_verdict(section))
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
    from matplotlib.figure import Figure

    panels = [("synthetic images", section["synthetic"])]
    if "real_reference" in section:
        panels.append(("real test images (reference)", section["real_reference"]))
    classes = section["classes"]
    side = 1.2 + 0.55 * len(classes)
    fig = Figure(figsize=(side * len(panels) + 0.8, side + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, scores) in zip(axes, panels):
        matrix = np.asarray(scores["confusion_matrix"], dtype=float)
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(share):
            ax.text(j, i, f"{value:.0%}\n({int(matrix[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 else "#222")
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("intended class")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path).relative_to(Path(out_dir).parent).as_posix()
