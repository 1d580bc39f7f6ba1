"""Statistics agree with scikit-learn, statsmodels, scipy and krippendorff on known tables."""

from __future__ import annotations

import csv
import io

import krippendorff
import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from synthmed.study.stats import analyze, answers_csv, rate

# Six images (3 synthetic) and three readers; "ann" is always right, "ben" says real to all, "cat" mixes.
TRUTH = {"c1": True, "c2": True, "c3": True, "c4": False, "c5": False, "c6": False}
CALLS = {
    "ann": ["fake", "fake", "fake", "real", "real", "real"],
    "ben": ["real", "real", "real", "real", "real", "real"],
    "cat": ["fake", "unsure", "real", "real", "fake", "unsure"],
}


def rows() -> list[dict]:
    return [{"reader": reader, "case": case, "source_id": case, "is_synthetic": TRUTH[case], "modality": "cxr",
             "label": "pneumonia" if case in ("c1", "c4") else "normal", "call": call, "confidence": 3,
             "condition": "", "findings": f"{reader} on {case}", "submitted": True, "updated_utc": "t"}
            for reader, calls in CALLS.items() for case, call in zip(TRUTH, calls)]


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


def test_agreement_matches_reference_libraries(result):
    agree = result["agreement"]
    for a, b in (("ann", "ben"), ("ann", "cat"), ("ben", "cat")):
        expected = cohen_kappa_score(CALLS[a], CALLS[b], labels=["real", "fake", "unsure"])
        got = agree["pairs"][f"{a} vs {b}"]["cohen_kappa"]
        assert (got is None and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-4)
    codes = {"real": 0, "fake": 1, "unsure": 2}
    matrix = np.array([[codes[CALLS[r][i]] for r in CALLS] for i in range(6)])
    assert agree["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(aggregate_raters(matrix, n_cat=3)[0]), abs=1e-4)
    alpha = krippendorff.alpha(reliability_data=matrix.T.astype(float), level_of_measurement="nominal")
    assert agree["krippendorff_alpha"]["value"] == pytest.approx(alpha, abs=1e-4)
    assert agree["pairs"]["ann vs ben"]["both_called_real"] == 3
    assert agree["pairs"]["ann vs ben"]["both_called_real_synthetic"] == 0
    assert agree["pairs"]["ben vs cat"]["both_called_real"] == 2  # c3 (synthetic) and c4 (real)
    assert agree["pairs"]["ben vs cat"]["both_called_real_synthetic"] == 1
    assert agree["all_readers_called_real"] == {"cases": 1, "of_which_synthetic": 0}


def test_missing_answers_and_cohen_kappa_on_shared_cases():
    partial = [r for r in rows() if not (r["reader"] == "cat" and r["case"] in ("c5", "c6"))]
    result = analyze(answers=partial, cases=cases(), readers=list(CALLS))
    assert result["agreement"]["fleiss_kappa"]["cases_answered_by_all"] == 4
    expected = cohen_kappa_score(CALLS["ann"][:4], CALLS["cat"][:4], labels=["real", "fake", "unsure"])
    assert result["agreement"]["pairs"]["ann vs cat"]["cohen_kappa"] == pytest.approx(expected, abs=1e-4)
    codes = {"real": 0, "fake": 1, "unsure": 2}
    data = np.array([[codes[c] for c in CALLS[r]] for r in CALLS], dtype=float)
    data[2, 4:] = np.nan
    expected_alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert result["agreement"]["krippendorff_alpha"]["value"] == pytest.approx(expected_alpha, abs=1e-4)


def test_confusion_strata_findings_and_verdict(result):
    assert result["confusion"]["cat"] == {"real images": {"real": 1, "fake": 1, "unsure": 1},
                                          "synthetic images": {"real": 1, "fake": 1, "unsure": 1}}
    assert result["counts_by_stratum"]["pooled"]["cxr / pneumonia / synthetic"] == {"real": 1, "fake": 2, "unsure": 0}
    by_class = result["pooled_by_modality_class"]
    assert set(by_class) == {"cxr / normal", "cxr / pneumonia"} and by_class["cxr / pneumonia"]["answers"] == 6
    assert by_class["cxr / pneumonia"]["sensitivity"]["k"] == 2 and by_class["cxr / normal"]["specificity"]["n"] == 6
    assert result["findings"]["c2"]["readers"]["cat"] == {"call": "unsure", "confidence": 3, "condition": "",
                                                          "findings": "cat on c2"}
    assert result["verdict"].startswith("Readers could not tell") and "Fleiss' kappa" in result["verdict"]
    perfect = analyze(answers=[r for r in rows() if r["reader"] == "ann"] * 5, cases=cases(), readers=["ann"])
    assert perfect["verdict"].startswith("Readers could tell")


def test_all_synthetic_verdict_and_empty_study():
    synthetic_only = [r for r in rows() if r["is_synthetic"]]
    result = analyze(answers=synthetic_only, cases=cases()[:3], readers=list(CALLS), all_synthetic=True)
    assert result["pooled"]["specificity"] is None and result["verdict"].startswith("All images were synthetic")
    empty = analyze(answers=[], cases=cases(), readers=["ann", "ben"])
    assert empty["verdict"] == "No answers yet." and empty["pooled"]["accuracy"] is None
    assert empty["agreement"]["krippendorff_alpha"]["value"] is None


def test_csv_export_has_truth_and_correctness():
    table = list(csv.DictReader(io.StringIO(answers_csv(rows()))))
    assert len(table) == 18
    first = next(r for r in table if r["reader"] == "ben" and r["case"] == "c1")
    assert first["truth"] == "synthetic" and first["call"] == "real" and first["correct"] == "0"
