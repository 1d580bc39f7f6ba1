"""Reader-study statistics: accuracy with Wilson intervals, binomial tests, kappas, alpha, confusion, findings.

Definitions (per reader, pooled over readers, and per modality/class):
accuracy = correct calls / all answers (an "unsure" is not correct); sensitivity = synthetic images
called fake / synthetic images answered; specificity = real images called real / real images answered;
unsure rate = "unsure" / all answers. The binomial test asks whether the decisive (not unsure) answers
are correct more often than chance (p = 0.5, two-sided). Agreement uses the three categories
real/fake/unsure: Cohen's kappa per pair (scikit-learn), Fleiss' kappa over the cases every reader
answered (statsmodels), Krippendorff's alpha (nominal, missing answers allowed).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from typing import Any

import krippendorff
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from synthmed.study.db import CALLS

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("reader", "case", "source_id", "truth", "modality", "label", "call", "correct", "confidence",
               "condition", "findings", "submitted", "updated_utc")


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 4)


def rate(k: int, n: int) -> dict[str, Any] | None:
    """`k / n` with its 95% Wilson interval (None when n is 0)."""
    if n == 0:
        return None
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {"value": round(k / n, 4), "ci95_low": round(float(low), 4), "ci95_high": round(float(high), 4),
            "k": int(k), "n": int(n)}


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
        "binomial_vs_chance": None if test is None else {
            "correct": correct, "decisive": len(decisive), "p_value": _finite(test.pvalue)},
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


def agreement(rows: list[dict], readers: list[str]) -> dict[str, Any]:
    """Cohen's kappa per reader pair, Fleiss' kappa and Krippendorff's alpha over all readers."""
    calls = {(r["reader"], r["case"]): r["call"] for r in rows}
    truth = {r["case"]: r["is_synthetic"] for r in rows}
    cases = sorted(truth)
    pairs = {}
    for a, b in itertools.combinations(readers, 2):
        shared = [c for c in cases if (a, c) in calls and (b, c) in calls]
        both_real = [c for c in shared if calls[a, c] == calls[b, c] == "real"]
        kappa = cohen_kappa_score([calls[a, c] for c in shared], [calls[b, c] for c in shared],
                                  labels=list(CALLS)) if shared else float("nan")
        pairs[f"{a} vs {b}"] = {
            "cohen_kappa": _finite(kappa), "cases": len(shared),
            "percent_agreement": rate(sum(calls[a, c] == calls[b, c] for c in shared), len(shared)),
            "both_called_real": len(both_real),
            "both_called_real_synthetic": sum(truth[c] for c in both_real),
            "both_called_real_real": sum(not truth[c] for c in both_real),
        }
    complete = [c for c in cases if all((r, c) in calls for r in readers)]
    codes = {call: i for i, call in enumerate(CALLS)}
    fleiss = None
    if len(readers) >= 2 and complete:
        table, _ = aggregate_raters(np.array([[codes[calls[r, c]] for r in readers] for c in complete]),
                                    n_cat=len(CALLS))
        fleiss = _finite(fleiss_kappa(table, method="fleiss"))
    alpha = None
    if len(readers) >= 2 and cases:
        data = np.array([[codes[calls[r, c]] if (r, c) in calls else np.nan for c in cases] for r in readers])
        try:
            alpha = _finite(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
        except (ValueError, ZeroDivisionError):  # one category only: alpha is undefined
            alpha = None
    return {"pairs": pairs,
            "fleiss_kappa": {"value": fleiss, "cases_answered_by_all": len(complete), "readers": len(readers)},
            "krippendorff_alpha": {"value": alpha, "cases": len(cases), "readers": len(readers)},
            "all_readers_called_real": {
                "cases": sum(all(calls[r, c] == "real" for r in readers) for c in complete),
                "of_which_synthetic": sum(truth[c] and all(calls[r, c] == "real" for r in readers)
                                          for c in complete)}}


def findings(rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Per image: truth, modality, class and every reader's call, confidence, condition and findings text."""
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(row["case"], {"truth": truth_name(row["is_synthetic"]), "modality": row["modality"],
                                               "label": row["label"], "source_id": row["source_id"], "readers": {}})
        entry["readers"][row["reader"]] = {"call": row["call"], "confidence": row["confidence"],
                                           "condition": row["condition"], "findings": row["findings"]}
    return table


def verdict(pooled: dict[str, Any], agree: dict[str, Any], *, all_synthetic: bool) -> str:
    """One sentence a reader of the report can take away."""
    if not pooled["answers"]:
        return "No answers yet."
    binomial = pooled["binomial_vs_chance"]
    if all_synthetic:
        fake, real = pooled["sensitivity"], pooled["synthetic_called_real"]
        text = (f"All images were synthetic: readers called {fake['value']:.0%} of them fake "
                f"(95% CI {fake['ci95_low']:.0%}-{fake['ci95_high']:.0%}) and {real['value']:.0%} real")
    else:
        acc = pooled["accuracy"]
        better = binomial is not None and binomial["p_value"] is not None and binomial["p_value"] < 0.05 \
            and binomial["correct"] > binomial["decisive"] / 2
        text = (f"Readers {'could' if better else 'could not'} tell synthetic from real images better than "
                f"chance: pooled accuracy {acc['value']:.0%} (95% CI {acc['ci95_low']:.0%}-{acc['ci95_high']:.0%})")
    if binomial is not None and binomial["p_value"] is not None:
        text += f", binomial p = {binomial['p_value']:.3g} on {binomial['decisive']} decisive answers"
    fleiss = agree["fleiss_kappa"]["value"]
    return text + (f"; Fleiss' kappa {fleiss:.2f}." if fleiss is not None else ".")


def analyze(*, answers: list[dict], cases: list[dict], readers: list[str], all_synthetic: bool = False,
            closed: bool = False) -> dict[str, Any]:
    """The full result as a tidy nested dict (what `synthmed study analyze --json` writes)."""
    pooled = reader_metrics(answers)
    agree = agreement(answers, readers)
    by_reader = {name: [r for r in answers if r["reader"] == name] for name in readers}
    return {
        "verdict": verdict(pooled, agree, all_synthetic=all_synthetic),
        "study": {"cases": len(cases), "real": sum(not c["is_synthetic"] for c in cases),
                  "synthetic": sum(bool(c["is_synthetic"]) for c in cases), "readers": len(readers),
                  "answers": len(answers), "all_synthetic": all_synthetic, "closed": closed},
        "pooled": pooled,
        "per_reader": {name: reader_metrics(rows) for name, rows in by_reader.items()},
        "confusion": {"pooled": confusion(answers), **{n: confusion(r) for n, r in by_reader.items()}},
        "pooled_by_modality_class": {f"{m} / {c}": reader_metrics([r for r in answers
                                                                    if (r["modality"], r["label"]) == (m, c)])
                                     for m, c in sorted({(r["modality"], r["label"]) for r in answers})},
        "counts_by_stratum": {"pooled": counts_by_stratum(answers),
                              **{n: counts_by_stratum(r) for n, r in by_reader.items()}},
        "agreement": agree,
        "findings": findings(answers),
    }


def answers_csv(answers: list[dict]) -> str:
    """One CSV row per answer, with the truth (the private export)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in answers:
        cells = {**row, "truth": truth_name(row["is_synthetic"]), "correct": int(is_correct(row)),
                 "submitted": int(bool(row["submitted"])), "updated_utc": str(row["updated_utc"])}
        writer.writerow({key: spreadsheet_safe(value) for key, value in cells.items()})
    return buffer.getvalue()


def spreadsheet_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (starts with = + - @ tab or CR) gets a leading quote."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value
