"""Confidence calls -> per-reader AUC -> verdict: distinguishable, indistinguishable within m, or inconclusive."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.study.analysis import analyze
from synthmed.study.discrimination import fakeness


def simulated(readers: int, cases: int, *, signal: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Answers of `readers` readers on `cases` cases (half synthetic) whose latent fake-ness = signal x truth +
    a case effect shared by all readers + reader noise, cut into real/unsure/fake with confidence 1-5."""
    rng = np.random.default_rng(seed)
    truth = np.arange(cases) % 2 == 1
    case_effect = rng.normal(0, 1, cases)
    case_rows = [
        {"case": f"c{k:04d}", "is_synthetic": bool(truth[k]), "modality": "cxr", "label": "x"} for k in range(cases)
    ]
    answers = []
    for j in range(readers):
        latent = signal * truth + case_effect + rng.normal(0, 1, cases)
        level = np.clip(np.round(latent * 2), -5, 5).astype(int)
        for k in range(cases):
            call = "fake" if level[k] > 0 else "real" if level[k] < 0 else "unsure"
            answers.append(
                {
                    "reader": f"r{j}",
                    "case": case_rows[k]["case"],
                    "is_synthetic": bool(truth[k]),
                    "modality": "cxr",
                    "label": "x",
                    "call": call,
                    "confidence": max(1, abs(level[k])),
                    "condition": "",
                    "findings": "",
                    "source_id": "",
                    "submitted": True,
                    "updated_utc": "",
                }
            )
    return answers, case_rows


def run(readers: int, cases: int, signal: float, **kwargs) -> dict:
    answers, case_rows = simulated(readers, cases, signal=signal)
    return analyze(answers=answers, cases=case_rows, readers=sorted({a["reader"] for a in answers}), **kwargs)


def test_fakeness_scale_orders_calls():
    order = [fakeness("real", 5), fakeness("real", 1), fakeness("unsure", 3), fakeness("fake", 1), fakeness("fake", 5)]
    assert order == sorted(order) and len(set(order)) == 5 and fakeness("unsure", 1) == fakeness("unsure", 5)


def test_clear_signal_is_distinguishable():
    result = run(5, 60, signal=2.0)
    assert result["verdict"].startswith("distinguishable:")
    disc = result["discrimination"]
    assert disc["mrmc"]["auc"] > 0.75 and disc["mrmc"]["ci95_low"] > 0.5
    assert all(auc > 0.6 for auc in disc["per_reader_auc"].values())


def test_no_signal_with_enough_readers_and_cases_is_indistinguishable_within_margin():
    result = run(8, 400, signal=0.0)
    assert result["verdict"].startswith("indistinguishable within margin 0.1"), result["verdict"]
    tost = result["discrimination"]["tost"]
    assert tost["equivalent"] and 0.4 < tost["ci90_low"] and tost["ci90_high"] < 0.6


def test_no_signal_with_few_cases_is_inconclusive_not_indistinguishable():
    result = run(3, 20, signal=0.0)
    assert result["verdict"].startswith("inconclusive: too few cases/readers"), result["verdict"]
    assert result["discrimination"]["plan"], "an inconclusive result should say what study would be needed"
    tight = run(8, 400, signal=0.0, margin_auc=0.01)
    assert tight["verdict"].startswith("inconclusive"), "a tiny margin cannot be shown with 400 cases"


def test_incomplete_readers_are_left_out_of_mrmc_and_named():
    answers, case_rows = simulated(4, 40, signal=1.0)
    answers = [a for a in answers if not (a["reader"] == "r3" and a["case"] == "c0000")]
    result = analyze(answers=answers, cases=case_rows, readers=["r0", "r1", "r2", "r3"])
    disc = result["discrimination"]
    assert disc["readers_in_mrmc"] == ["r0", "r1", "r2"] and disc["left_out_incomplete"] == ["r3"]
    assert disc["per_reader_auc"]["r3"] is not None
    single = analyze(answers=[a for a in answers if a["reader"] == "r0"], cases=case_rows, readers=["r0"])
    assert single["verdict"].startswith("inconclusive: too few cases/readers (1 readers")


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_must_be_inside_zero_and_half(margin):
    with pytest.raises(ValueError, match="margin"):
        run(3, 20, signal=0.0, margin_auc=margin)


def test_readers_who_all_answer_alike_do_not_crash_the_analysis():
    answers, case_rows = simulated(3, 20, signal=0.0)
    same = [{**a, "call": "unsure", "confidence": 3} for a in answers]
    result = analyze(answers=same, cases=case_rows, readers=["r0", "r1", "r2"])
    assert result["discrimination"]["mrmc"]["auc"] == 0.5 and result["discrimination"]["mrmc"]["stderr"] == 0.0
    assert result["verdict"].startswith("inconclusive") and "same score" in result["verdict"]
