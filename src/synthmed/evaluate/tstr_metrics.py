"""Usefulness metrics: per-classifier scores on the real test split, seed summaries, bootstrap intervals, ratios."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import confusion_matrix

METRICS = ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")
PER_CLASS = ("precision", "recall", "f1")


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half), the same number as sklearn's roc_auc_score."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, num_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro AUC / F1, per-class precision, recall, F1 and the confusion matrix.

    Per-class values are None for a class absent from `y_true` (recall, F1) or never predicted
    (precision); macro F1 averages the classes present in `y_true` (sklearn's with labels=present,
    zero_division=0). Confusion matrix rows = true class, columns = predicted class (sklearn).
    """
    y_true = np.asarray(y_true)
    pred = proba.argmax(axis=1)
    matrix = confusion_matrix(y_true, pred, labels=np.arange(num_classes))
    support, predicted, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    recall: list[float | None] = []
    precision: list[float | None] = []
    f1: list[float | None] = []
    aucs: list[float] = []
    for k in range(num_classes):
        recall.append(float(hits[k] / support[k]) if support[k] else None)
        precision.append(float(hits[k] / predicted[k]) if predicted[k] else None)
        if support[k]:
            f1.append(float(2 * hits[k] / (support[k] + predicted[k])))
        else:
            f1.append(None)
        positive = y_true == k
        if positive.any() and not positive.all():
            aucs.append(_binary_auc(positive, proba[:, k]))
    present_recall = [r for r in recall if r is not None]
    present_f1 = [v for v in f1 if v is not None]
    return {
        "accuracy": float((pred == y_true).mean()),
        "balanced_accuracy": float(np.mean(present_recall)),
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "macro_f1": float(np.mean(present_f1)),
        "per_class_recall": recall,
        "per_class_precision": precision,
        "per_class_f1": f1,
        "confusion_matrix": matrix.tolist(),
    }


def summary(per_seed: list[float | None], boot: np.ndarray) -> dict:
    """Mean over seeds, 95% bootstrap interval over test images (of the seed mean), spread over seeds."""
    values = [v for v in per_seed if v is not None]
    boot = boot[np.isfinite(boot)]
    return {
        "mean": float(np.mean(values)) if values else None,
        "ci_low": float(np.percentile(boot, 2.5)) if boot.size else None,
        "ci_high": float(np.percentile(boot, 97.5)) if boot.size else None,
        "std_over_seeds": float(np.std(values)) if len(values) > 1 else 0.0,
        "min_over_seeds": float(np.min(values)) if values else None,
        "max_over_seeds": float(np.max(values)) if values else None,
        "per_seed": per_seed,
    }


def boot_names(num_classes: int) -> list[str]:
    """Names of the bootstrapped quantities: the METRICS, then '<precision|recall|f1>_<k>' per class."""
    return [*METRICS, *(f"{what}_{k}" for what in PER_CLASS for k in range(num_classes))]


def bootstrap(
    y: np.ndarray, probas: dict[str, list[np.ndarray]], num_classes: int, *, samples: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Seed-mean metrics over `samples` resamples of the test images (the same resamples for every condition)."""
    rng = np.random.default_rng(seed)
    out = {cond: {name: np.full(samples, np.nan) for name in boot_names(num_classes)} for cond in probas}
    for b in range(samples):
        index = rng.integers(0, len(y), len(y))
        for cond, per_seed in probas.items():
            results = [classification_metrics(y[index], p[index], num_classes) for p in per_seed]
            for name in METRICS:
                vals = [r[name] for r in results if r[name] is not None]
                out[cond][name][b] = np.mean(vals) if vals else np.nan
            for what in PER_CLASS:
                for k in range(num_classes):
                    vals = [r[f"per_class_{what}"][k] for r in results if r[f"per_class_{what}"][k] is not None]
                    out[cond][f"{what}_{k}"][b] = np.mean(vals) if vals else np.nan
    return out


def condition_results(
    y: np.ndarray, per_seed: list[np.ndarray], boot: dict[str, np.ndarray], classes: list[str], seeds: list[int]
) -> dict:
    """One condition's entry in usefulness.results[arch]: summaries, per-class P/R/F1, confusion per seed."""
    num_classes = len(classes)
    scores = [classification_metrics(y, p, num_classes) for p in per_seed]
    entry = {m: summary([s[m] for s in scores], boot[m]) for m in METRICS}
    entry["per_class_recall"] = {
        name: summary([s["per_class_recall"][k] for s in scores], boot[f"recall_{k}"]) for k, name in enumerate(classes)
    }
    entry["per_class"] = {
        name: {
            "support": int(np.sum(y == k)),
            **{what: summary([s[f"per_class_{what}"][k] for s in scores], boot[f"{what}_{k}"]) for what in PER_CLASS},
        }
        for k, name in enumerate(classes)
    }
    entry["confusion_matrix_per_seed"] = {str(seed): s["confusion_matrix"] for seed, s in zip(seeds, scores)}
    return entry


def ratio(top: dict, bottom: dict, boot_top: np.ndarray, boot_bottom: np.ndarray) -> dict:
    """Ratio of two seed means with a paired bootstrap interval."""
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = boot_top / boot_bottom
    boot = boot[np.isfinite(boot)]
    mean = top["mean"] / bottom["mean"] if top["mean"] is not None and bottom["mean"] else None
    return {
        "mean": mean,
        "ci_low": float(np.percentile(boot, 2.5)) if boot.size else None,
        "ci_high": float(np.percentile(boot, 97.5)) if boot.size else None,
    }


def ratios(results: dict, boot: dict) -> dict:
    """TSTR/TRTR and (real+synthetic)/TRTR for every metric of one arch."""
    pairs = {"tstr_over_trtr": ("synthetic", "real"), "augmented_over_trtr": ("real+synthetic", "real")}
    return {
        name: {m: ratio(results[top][m], results[bottom][m], boot[top][m], boot[bottom][m]) for m in METRICS}
        for name, (top, bottom) in pairs.items()
        if top in results and bottom in results
    }
