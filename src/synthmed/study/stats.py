"""Reader-study statistics per set of answers: accuracy (Wilson and case/reader-clustered), confusion, findings, CSV.

Definitions (per reader, pooled over readers, and per modality/class):
accuracy = correct calls / all answers (an "unsure" is not correct); sensitivity = synthetic images
called fake / synthetic images answered; specificity = real images called real / real images answered;
unsure rate = "unsure" / all answers. The binomial test asks whether the decisive (not unsure) answers
are correct more often than chance (p = 0.5, two-sided); it is descriptive only: the verdict comes from
`discrimination` (ROC AUC, random readers and cases). Agreement lives in `agreement`.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import statsmodels.api as sm
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from synthmed.study.db import CALLS

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "reader",
    "case",
    "source_id",
    "truth",
    "modality",
    "label",
    "call",
    "correct",
    "confidence",
    "condition",
    "findings",
    "submitted",
    "updated_utc",
)


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 4)


def rate(k: int, n: int) -> dict[str, Any] | None:
    """`k / n` with its 95% Wilson interval (None when n is 0)."""
    if n == 0:
        return None
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {
        "value": round(k / n, 4),
        "ci95_low": round(float(low), 4),
        "ci95_high": round(float(high), 4),
        "k": int(k),
        "n": int(n),
    }


def truth_name(is_synthetic: bool) -> str:
    return "synthetic" if is_synthetic else "real"


def is_correct(row: dict) -> bool:
    return row["call"] == ("fake" if row["is_synthetic"] else "real")


def reader_metrics(rows: list[dict]) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity, unsure rate and the binomial test for a set of answers."""
    synthetic = [r for r in rows if r["is_synthetic"]]
    real = [r for r in rows if not r["is_synthetic"]]
    decisive = [r for r in rows if r["call"] != "unsure"]
    correct = sum(is_correct(r) for r in decisive)
    test = binomtest(correct, len(decisive), p=0.5) if decisive else None
    return {
        "answers": len(rows),
        "accuracy": rate(sum(is_correct(r) for r in rows), len(rows)),
        "sensitivity": rate(sum(r["call"] == "fake" for r in synthetic), len(synthetic)),
        "specificity": rate(sum(r["call"] == "real" for r in real), len(real)),
        "unsure_rate": rate(sum(r["call"] == "unsure" for r in rows), len(rows)),
        "synthetic_called_real": rate(sum(r["call"] == "real" for r in synthetic), len(synthetic)),
        "binomial_vs_chance": None
        if test is None
        else {"correct": correct, "decisive": len(decisive), "p_value": _finite(test.pvalue)},
    }


def confusion(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Truth (real/synthetic images) x call (real/fake/unsure) counts."""
    table = {f"{t} images": {c: 0 for c in CALLS} for t in ("real", "synthetic")}
    for row in rows:
        table[f"{truth_name(row['is_synthetic'])} images"][row["call"]] += 1
    return table


def counts_by_stratum(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Calls per (modality, class, truth)."""
    table: dict[str, dict[str, int]] = {}
    for row in sorted(rows, key=lambda r: (r["modality"], r["label"], r["is_synthetic"])):
        key = f"{row['modality']} / {row['label']} / {truth_name(row['is_synthetic'])}"
        table.setdefault(key, {c: 0 for c in CALLS})[row["call"]] += 1
    return table


def findings(rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Per image: truth, modality, class and every reader's call, confidence, condition and findings text."""
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(
            row["case"],
            {
                "truth": truth_name(row["is_synthetic"]),
                "modality": row["modality"],
                "label": row["label"],
                "source_id": row["source_id"],
                "readers": {},
            },
        )
        entry["readers"][row["reader"]] = {
            "call": row["call"],
            "confidence": row["confidence"],
            "condition": row["condition"],
            "findings": row["findings"],
        }
    return table


def clustered_accuracy(rows: list[dict]) -> dict[str, Any] | None:
    """Pooled accuracy with a 95% interval clustered two-way by case and by reader (statsmodels OLS on a constant).

    Answers on one image, and answers of one reader, are not independent; a Wilson interval over all answers
    would be too narrow. Falls back to one-way clustering when only one reader or one case varies.
    """
    if not rows:
        return None
    correct = np.array([float(is_correct(r)) for r in rows])
    groups = {name: np.unique([r[name] for r in rows], return_inverse=True)[1] for name in ("case", "reader")}
    varying = [g for g in groups.values() if g.max() > 0]
    value = float(correct.mean())
    if not varying or correct.min() == correct.max():
        return {
            "value": round(value, 4),
            "ci95_low": None,
            "ci95_high": None,
            "n": len(rows),
            "clusters": {k: int(g.max() + 1) for k, g in groups.items()},
        }
    fit = sm.OLS(correct, np.ones((len(rows), 1))).fit(
        cov_type="cluster",
        cov_kwds={"groups": np.column_stack(varying) if len(varying) == 2 else varying[0]},
        use_t=True,
    )
    low, high = fit.conf_int(alpha=0.05)[0]
    defined = bool(np.isfinite(low) and np.isfinite(high))  # undefined when every cluster agrees exactly
    return {
        "value": round(value, 4),
        "ci95_low": round(max(0.0, float(low)), 4) if defined else None,
        "ci95_high": round(min(1.0, float(high)), 4) if defined else None,
        "n": len(rows),
        "clusters": {k: int(g.max() + 1) for k, g in groups.items()},
    }


def answers_csv(answers: list[dict]) -> str:
    """One CSV row per answer, with the truth (the private export)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in answers:
        cells = {
            **row,
            "truth": truth_name(row["is_synthetic"]),
            "correct": int(is_correct(row)),
            "submitted": int(bool(row["submitted"])),
            "updated_utc": str(row["updated_utc"]),
        }
        writer.writerow({key: spreadsheet_safe(value) for key, value in cells.items()})
    return buffer.getvalue()


def spreadsheet_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (starts with = + - @ tab or CR) gets a leading quote."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value
