"""Agreement between readers: Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha, over those who answered.

The calls are nominal categories (real / fake / unsure). Fleiss' kappa needs every case rated by the same
readers, so it uses the readers who answered anything and the cases all of them answered, and is left out
(with the reason) below MIN_FLEISS_CASES such cases; Krippendorff's alpha allows missing answers.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from synthmed.study.db import CALLS
from synthmed.study.stats import rate

MIN_FLEISS_CASES = 5


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 4)


def cohen(first: list, second: list, *, labels: list) -> float:
    """Cohen's kappa of two raters' categorical calls on the same subjects (scikit-learn)."""
    return float(cohen_kappa_score(first, second, labels=labels))


def fleiss(ratings: np.ndarray, *, n_categories: int | None = None) -> float:
    """Fleiss' kappa of a (subjects, raters) array of integer category codes (statsmodels)."""
    table, _ = aggregate_raters(np.asarray(ratings), n_cat=n_categories)
    return float(fleiss_kappa(table, method="fleiss"))


def alpha(
    reliability: np.ndarray, *, level: Literal["nominal", "ordinal", "interval", "ratio"] = "nominal"
) -> float | None:
    """Krippendorff's alpha of a (raters, units) array with NaN for missing (None when undefined)."""
    try:
        return float(
            krippendorff.alpha(reliability_data=np.asarray(reliability, dtype=float), level_of_measurement=level)
        )
    except (ValueError, ZeroDivisionError):  # a single category in all the data: alpha is undefined
        return None


def _pair(calls: dict, truth: dict, a: str, b: str) -> dict[str, Any]:
    shared = [c for c in sorted(truth) if (a, c) in calls and (b, c) in calls]
    both_real = [c for c in shared if calls[a, c] == calls[b, c] == "real"]
    kappa = (
        cohen([calls[a, c] for c in shared], [calls[b, c] for c in shared], labels=list(CALLS))
        if shared
        else float("nan")
    )
    return {
        "cohen_kappa": _finite(kappa),
        "cases": len(shared),
        "percent_agreement": rate(sum(calls[a, c] == calls[b, c] for c in shared), len(shared)),
        "both_called_real": len(both_real),
        "both_called_real_synthetic": sum(truth[c] for c in both_real),
        "both_called_real_real": sum(not truth[c] for c in both_real),
    }


def agreement(rows: list[dict], readers: list[str]) -> dict[str, Any]:
    """Agreement of the `readers` who gave at least one answer in `rows`; `n` says who and how many cases."""
    calls = {(r["reader"], r["case"]): r["call"] for r in rows}
    truth = {r["case"]: bool(r["is_synthetic"]) for r in rows}
    answered = [name for name in readers if any(key[0] == name for key in calls)]
    silent = [name for name in readers if name not in answered]
    cases = sorted(truth)
    codes = {call: i for i, call in enumerate(CALLS)}
    complete = [c for c in cases if all((r, c) in calls for r in answered)]
    fleiss_value, fleiss_note = None, None
    if len(answered) < 2:
        fleiss_note = "needs at least 2 readers who answered"
    elif len(complete) < MIN_FLEISS_CASES:
        fleiss_note = f"needs at least {MIN_FLEISS_CASES} cases answered by every reader who took part"
    else:
        fleiss_value = _finite(
            fleiss(np.array([[codes[calls[r, c]] for r in answered] for c in complete]), n_categories=len(CALLS))
        )
    alpha_value = None
    if len(answered) >= 2 and cases:
        data = np.array([[codes[calls[r, c]] if (r, c) in calls else np.nan for c in cases] for r in answered])
        alpha_value = _finite(alpha(data))
    return {
        "pairs": {f"{a} vs {b}": _pair(calls, truth, a, b) for a, b in itertools.combinations(answered, 2)},
        "readers_answered": answered,
        "readers_without_answers": silent,
        "fleiss_kappa": {
            "value": fleiss_value,
            "cases_answered_by_all": len(complete),
            "readers": len(answered),
            "note": fleiss_note,
        },
        "krippendorff_alpha": {"value": alpha_value, "cases": len(cases), "readers": len(answered)},
        "all_readers_called_real": {
            "cases": sum(all(calls[r, c] == "real" for r in answered) for c in complete),
            "of_which_synthetic": sum(truth[c] and all(calls[r, c] == "real" for r in answered) for c in complete),
        },
    }
