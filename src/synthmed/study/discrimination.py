"""Can readers tell synthetic from real? Confidence calls -> per-reader ROC AUC -> MRMC test, TOST and the verdict.

A call and its confidence become one "fake-ness" score on 11 levels: real with confidence c -> 6 - c,
unsure -> 6, fake with confidence c -> 6 + c. AUC 0.5 means no discrimination. The random-reader,
random-case analysis (`mrmc.single_treatment`) uses the readers who answered every case; the verdict is
"distinguishable" when the two-sided test of AUC = 0.5 rejects, "indistinguishable within margin m" when the
two one-sided tests reject |AUC - 0.5| >= m, and otherwise "inconclusive: too few cases/readers".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from synthmed.study import mrmc, planner

MIDPOINT = 6


def fakeness(call: str, confidence: int) -> int:
    """The 11-level score of one answer (higher = more sure the image is synthetic)."""
    return MIDPOINT + {"fake": 1, "real": -1, "unsure": 0}[call] * int(confidence)


def _score_matrix(rows: list[dict], readers: list[str], cases: list[str]) -> np.ndarray:
    scores = {(r["reader"], r["case"]): fakeness(r["call"], r["confidence"]) for r in rows}
    return np.array([[scores[name, case] for case in cases] for name in readers], dtype=np.float64)


def per_reader_auc(rows: list[dict], readers: list[str]) -> dict[str, float | None]:
    """Each reader's empirical ROC AUC (synthetic = positive) over the cases they answered."""
    out: dict[str, float | None] = {}
    for name in readers:
        mine = [r for r in rows if r["reader"] == name]
        truth = [bool(r["is_synthetic"]) for r in mine]
        out[name] = (
            round(float(roc_auc_score(truth, [fakeness(r["call"], r["confidence"]) for r in mine])), 4)
            if 0 < sum(truth) < len(truth)
            else None
        )
    return out


def complete_readers(rows: list[dict], readers: list[str], case_ids: list[str]) -> list[str]:
    """The readers who answered every case (the fully crossed design the OR analysis needs)."""
    answered = {(r["reader"], r["case"]) for r in rows}
    return [name for name in readers if all((name, c) in answered for c in case_ids)]


def pilot_single_treatment(rows: list[dict], cases: list[dict]) -> tuple[mrmc.SingleTreatment, int]:
    """The random-reader analysis of a finished study, to plan the next one from its variance components."""
    case_ids = [c["case"] for c in cases]
    readers = complete_readers(rows, sorted({r["reader"] for r in rows}), case_ids)
    if len(readers) < 2:
        raise ValueError(
            f"the pilot study has {len(readers)} reader(s) who answered every case; it needs 2 or "
            "more. Plan from the defaults (leave out --pilot) instead."
        )
    truth = np.array([bool(c["is_synthetic"]) for c in cases])
    return mrmc.single_treatment(_score_matrix(rows, readers, case_ids), truth), len(case_ids)


def analyse(
    rows: list[dict], *, readers: list[str], cases: list[dict], margin_auc: float, alpha: float = 0.05
) -> dict[str, Any]:
    """Per-reader AUCs, the random-reader random-case AUC with TOST, the verdict, and a plan when inconclusive."""
    case_ids = [c["case"] for c in cases]
    truth = np.array([bool(c["is_synthetic"]) for c in cases])
    complete = complete_readers(rows, readers, case_ids)
    result: dict[str, Any] = {
        "margin_auc": margin_auc,
        "alpha": alpha,
        "per_reader_auc": per_reader_auc(rows, readers),
        "readers_in_mrmc": complete,
        "cases_in_mrmc": len(case_ids),
        "left_out_incomplete": [n for n in readers if n not in complete],
    }
    if len(complete) < 2 or truth.sum() < 2 or (~truth).sum() < 2:
        result.update(
            mrmc=None,
            tost=None,
            plan=None,
            verdict=(
                f"inconclusive: too few cases/readers ({len(complete)} readers answered every case; the random-reader "
                f"analysis needs at least 2, and at least 2 real and 2 synthetic cases)."
            ),
        )
        return result
    single = mrmc.single_treatment(_score_matrix(rows, complete, case_ids), truth, alpha=alpha)
    tost = mrmc.tost_vs_chance(single, margin=margin_auc, alpha=alpha)
    result["mrmc"] = {
        "auc": round(single.auc, 4),
        "stderr": round(single.stderr, 4),
        "df": round(single.df, 2),
        "ci95_low": round(single.ci95_low, 4),
        "ci95_high": round(single.ci95_high, 4),
        "ms_r": single.ms_r,
        "var": single.var,
        "cov2": single.cov2,
        "p_vs_chance": round(tost["p_vs_chance"], 4),
    }
    result["tost"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in tost.items()}
    result["plan"] = None
    auc_text = (
        f"AUC {single.auc:.3f} (95% CI {single.ci95_low:.3f}-{single.ci95_high:.3f}; {len(complete)} readers, "
        f"{len(case_ids)} cases, readers and cases random)"
    )
    if single.stderr == 0:
        result["verdict"] = (
            f"inconclusive: too few cases/readers to judge: every reader gave every case the same "
            f"score, so there is no variation to test ({auc_text})."
        )
    elif tost["p_vs_chance"] < alpha:
        direction = "apart" if single.auc > 0.5 else "apart, but inverted (synthetic images looked more real)"
        result["verdict"] = (
            f"distinguishable: readers told synthetic from real images {direction}: {auc_text}, "
            f"p = {tost['p_vs_chance']:.3g} against AUC 0.5."
        )
    elif tost["equivalent"]:
        result["verdict"] = (
            f"indistinguishable within margin {margin_auc:g}: {auc_text}; the 90% CI "
            f"{tost['ci90_low']:.3f}-{tost['ci90_high']:.3f} lies inside "
            f"{0.5 - margin_auc:.2f}-{0.5 + margin_auc:.2f} (TOST p = {tost['p_value']:.3g})."
        )
    else:
        inputs = planner.PlanInputs.from_pilot(single, cases=len(case_ids), margin_auc=margin_auc, alpha=alpha)
        inputs = inputs.model_copy(update={"true_auc": 0.5})  # plan for readers who truly cannot tell
        rows_needed = [row for row in planner.plan(inputs) if row.cases is not None]
        result["plan"] = [row.__dict__ for row in rows_needed]
        hint = (
            f"; with these variance components about {rows_needed[0].readers} readers x {rows_needed[0].cases} "
            f"cases (or {rows_needed[-1].readers} x {rows_needed[-1].cases}) would be needed"
            if rows_needed
            else ""
        )
        result["verdict"] = (
            f"inconclusive: too few cases/readers to show indistinguishability within margin "
            f"{margin_auc:g}: {auc_text}; the 90% CI {tost['ci90_low']:.3f}-{tost['ci90_high']:.3f} "
            f"reaches outside {0.5 - margin_auc:.2f}-{0.5 + margin_auc:.2f}{hint} "
            f"(`synthmed study plan`)."
        )
    return result
