"""Per-answer statistics and the assembled analysis on a small hand-made study (counts checked by hand)."""

from __future__ import annotations

import csv
import io

import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from synthmed.study.analysis import analyze
from synthmed.study.stats import answers_csv, rate

# Six images (3 synthetic) and three readers; "ann" is always right, "ben" says real to all, "cat" mixes.
TRUTH = {"c1": True, "c2": True, "c3": True, "c4": False, "c5": False, "c6": False}
CALLS = {
    "ann": ["fake", "fake", "fake", "real", "real", "real"],
    "ben": ["real", "real", "real", "real", "real", "real"],
    "cat": ["fake", "unsure", "real", "real", "fake", "unsure"],
}


def rows() -> list[dict]:
    return [
        {
            "reader": reader,
            "case": case,
            "source_id": case,
            "is_synthetic": TRUTH[case],
            "modality": "cxr",
            "label": "pneumonia" if case in ("c1", "c4") else "normal",
            "call": call,
            "confidence": 3,
            "condition": "",
            "findings": f"{reader} on {case}",
            "submitted": True,
            "updated_utc": "t",
        }
        for reader, calls in CALLS.items()
        for case, call in zip(TRUTH, calls)
    ]


def cases() -> list[dict]:
    return [{"case": c, "source_id": c, "is_synthetic": s, "modality": "cxr", "label": "x"} for c, s in TRUTH.items()]


@pytest.fixture
def result() -> dict:
    return analyze(answers=rows(), cases=cases(), readers=list(CALLS), closed=True)


def test_rate_is_the_wilson_interval():
    low, high = proportion_confint(7, 20, alpha=0.05, method="wilson")
    assert rate(7, 20) == {"value": 0.35, "ci95_low": round(low, 4), "ci95_high": round(high, 4), "k": 7, "n": 20}
    assert rate(0, 0) is None


def test_per_reader_metrics(result):
    ann, ben, cat = (result["per_reader"][n] for n in ("ann", "ben", "cat"))
    assert ann["accuracy"]["value"] == 1.0 and ann["sensitivity"]["value"] == 1.0 and ann["specificity"]["value"] == 1.0
    assert ben["sensitivity"]["value"] == 0.0 and ben["specificity"]["value"] == 1.0 and ben["accuracy"]["k"] == 3
    assert ben["synthetic_called_real"]["value"] == 1.0
    assert cat["unsure_rate"]["k"] == 2 and cat["accuracy"]["k"] == 2 and cat["binomial_vs_chance"]["decisive"] == 4
    assert cat["binomial_vs_chance"]["p_value"] == pytest.approx(binomtest(2, 4, 0.5).pvalue, abs=1e-4)
    pooled = result["pooled"]
    assert pooled["answers"] == 18 and pooled["accuracy"]["k"] == 6 + 3 + 2
    assert pooled["binomial_vs_chance"]["p_value"] == pytest.approx(binomtest(11, 16, 0.5).pvalue, abs=1e-4)


def test_agreement_pairs_count_shared_calls(result):
    agree = result["agreement"]
    assert agree["pairs"]["ann vs ben"]["both_called_real"] == 3
    assert agree["pairs"]["ann vs ben"]["both_called_real_synthetic"] == 0
    assert agree["pairs"]["ben vs cat"]["both_called_real"] == 2  # c3 (synthetic) and c4 (real)
    assert agree["pairs"]["ben vs cat"]["both_called_real_synthetic"] == 1
    assert agree["pairs"]["ann vs ben"]["percent_agreement"]["k"] == 3  # c4-c6 both real
    assert agree["all_readers_called_real"] == {"cases": 1, "of_which_synthetic": 0}
    # ben calls everything "real": kappa with anyone is 0 by definition (p_o = p_e).
    assert agree["pairs"]["ann vs ben"]["cohen_kappa"] == 0.0


def test_readers_without_answers_do_not_void_agreement_and_can_be_removed():
    result = analyze(answers=rows(), cases=cases(), readers=[*CALLS, "dan"], closed=True)
    fleiss = result["agreement"]["fleiss_kappa"]
    assert fleiss["value"] is not None and fleiss["readers"] == 3 and fleiss["cases_answered_by_all"] == 6
    assert result["agreement"]["readers_without_answers"] == ["dan"]
    removed = analyze(answers=rows(), cases=cases(), readers=list(CALLS), exclude=["ben"])
    assert removed["study"]["readers"] == 2 and removed["pooled"]["answers"] == 12
    assert list(removed["per_reader"]) == ["ann", "cat"] and removed["agreement"]["pairs"].keys() == {"ann vs cat"}
    with pytest.raises(ValueError, match="unknown reader"):
        analyze(answers=rows(), cases=cases(), readers=list(CALLS), exclude=["zed"])


def test_fleiss_needs_enough_cases_answered_by_all():
    few = [r for r in rows() if r["case"] in ("c1", "c4")]
    fleiss = analyze(answers=few, cases=cases(), readers=list(CALLS))["agreement"]["fleiss_kappa"]
    assert fleiss["value"] is None and "at least 5 cases" in fleiss["note"] and fleiss["cases_answered_by_all"] == 2


def test_clustered_accuracy_is_wider_than_wilson_when_cases_are_correlated():
    # 4 readers x 20 cases; on each case all readers give the same call: answers within a case are duplicates.
    truth = [k % 2 == 0 for k in range(20)]
    right = [k % 5 != 0 for k in range(20)]
    answers = [
        {
            "reader": f"r{j}",
            "case": f"c{k}",
            "is_synthetic": truth[k],
            "call": ("fake" if truth[k] else "real") if right[k] else ("real" if truth[k] else "fake"),
        }
        for j in range(4)
        for k in range(20)
    ]
    from synthmed.study.stats import clustered_accuracy

    clustered, wilson = clustered_accuracy(answers), rate(64, 80)
    assert clustered["value"] == 0.8 and clustered["clusters"] == {"case": 20, "reader": 4}
    assert clustered["ci95_high"] - clustered["ci95_low"] > 1.5 * (wilson["ci95_high"] - wilson["ci95_low"])


def test_confusion_strata_findings_and_verdict(result):
    assert result["confusion"]["cat"] == {
        "real images": {"real": 1, "fake": 1, "unsure": 1},
        "synthetic images": {"real": 1, "fake": 1, "unsure": 1},
    }
    assert result["counts_by_stratum"]["pooled"]["cxr / pneumonia / synthetic"] == {"real": 1, "fake": 2, "unsure": 0}
    by_class = result["pooled_by_modality_class"]
    assert set(by_class) == {"cxr / normal", "cxr / pneumonia"} and by_class["cxr / pneumonia"]["answers"] == 6
    assert by_class["cxr / pneumonia"]["sensitivity"]["k"] == 2 and by_class["cxr / normal"]["specificity"]["n"] == 6
    assert result["findings"]["c2"]["readers"]["cat"] == {
        "call": "unsure",
        "confidence": 3,
        "condition": "",
        "findings": "cat on c2",
    }
    assert result["verdict"].startswith("inconclusive: too few cases/readers")


def test_all_synthetic_verdict_and_empty_study():
    synthetic_only = [r for r in rows() if r["is_synthetic"]]
    result = analyze(answers=synthetic_only, cases=cases()[:3], readers=list(CALLS), all_synthetic=True)
    assert result["pooled"]["specificity"] is None and result["verdict"].startswith("All images were synthetic")
    empty = analyze(answers=[], cases=cases(), readers=["ann", "ben"])
    assert empty["verdict"] == "No answers yet." and empty["pooled"]["accuracy"] is None
    assert empty["agreement"]["krippendorff_alpha"]["value"] is None and empty["discrimination"] is None


def test_csv_export_has_truth_and_correctness():
    table = list(csv.DictReader(io.StringIO(answers_csv(rows()))))
    assert len(table) == 18
    first = next(r for r in table if r["reader"] == "ben" and r["case"] == "c1")
    assert first["truth"] == "synthetic" and first["call"] == "real" and first["correct"] == "0"
