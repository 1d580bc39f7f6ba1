"""Obuchowski-Rockette / Hillis analysis reproduces the published Van Dyke results to 3 decimals (or better).

Published figures: OR-DBM MRMC 2.5 (Schartz, Hillis, Pesce, Berbaum; University of Iowa) output for the Van Dyke
data, trapezoidal AUC, jackknife covariances, as shipped in RJafroc (inst/obumrm2/
VanDyke-traparea-jackknife-obuch-anova.txt, github.com/dpc10ster/RJafroc), and the same numbers printed by
MRMCaov's README (`summary(mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke))`,
github.com/brian-j-smith/MRMCaov). The data are tests/study/data/vandyke.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthmed.study import mrmc

DATA = Path(__file__).parent / "data" / "vandyke.csv"


@pytest.fixture(scope="module")
def vandyke() -> tuple[np.ndarray, np.ndarray]:
    table = pd.read_csv(DATA, comment="#").sort_values(["treatment", "reader", "case"])
    ratings = table["rating"].to_numpy(dtype=float).reshape(2, 5, 114)
    truth = table[(table.treatment == 1) & (table.reader == 1)]["truth"].to_numpy().astype(bool)
    return ratings, truth


def test_reader_aucs_match_published(vandyke):
    published = [
        [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
        [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169],
    ]
    np.testing.assert_allclose(mrmc.reader_aucs(*vandyke), published, atol=5e-9)


def test_or_hillis_random_readers_random_cases_matches_published(vandyke):
    result = mrmc.compare_treatments(*vandyke)
    parts = result["covariances"]
    assert result["ms_t"] == pytest.approx(0.00479617, abs=5e-9)
    assert result["ms_r"] == pytest.approx(0.00383620, abs=5e-9)
    assert result["ms_tr"] == pytest.approx(0.00055103, abs=5e-9)
    assert (parts.cov1, parts.cov2, parts.cov3, parts.var) == pytest.approx(
        (0.00034661, 0.00034407, 0.00023903, 0.00080229), abs=5e-9
    )
    assert result["f"] == pytest.approx(4.456319, abs=5e-7)
    assert result["df2"] == pytest.approx(15.25967, abs=5e-6)
    assert result["p_value"] == pytest.approx(0.05166569, abs=5e-9)
    assert result["difference"] == pytest.approx(-0.04380032, abs=5e-9)
    assert result["difference_stderr"] == pytest.approx(0.02074862, abs=5e-9)
    assert result["difference_ci95"] == pytest.approx((-0.08795950, 0.00035885), abs=5e-9)


@pytest.mark.parametrize(
    "treatment, auc, stderr, df, low, high, cov2",
    [
        (0, 0.89703704, 0.03317360, 12.74465, 0.82522360, 0.96885048, 0.00048396),
        (1, 0.94083736, 0.02156637, 12.71019, 0.89413783, 0.98753689, 0.00020419),
    ],
)
def test_single_treatment_intervals_match_published(vandyke, treatment, auc, stderr, df, low, high, cov2):
    ratings, truth = vandyke
    result = mrmc.single_treatment(ratings[treatment], truth)
    assert (result.auc, result.stderr, result.ci95_low, result.ci95_high, result.cov2) == pytest.approx(
        (auc, stderr, low, high, cov2), abs=5e-8
    )
    assert result.df == pytest.approx(df, abs=5e-5)


def test_tost_against_chance_on_the_published_interval(vandyke):
    ratings, truth = vandyke
    single = mrmc.single_treatment(ratings[0], truth)
    far = mrmc.tost_vs_chance(single, margin=0.1)
    assert not far["equivalent"] and far["p_vs_chance"] < 1e-4  # AUC 0.897 is far from 0.5
    # Equivalence around 0.5 is the mirror image of a test around the observed AUC: shift the scores' meaning.
    shifted = mrmc.SingleTreatment(**{**single.__dict__, "auc": 0.5 + 0.01})
    near = mrmc.tost_vs_chance(shifted, margin=0.1)
    assert near["equivalent"] and near["ci90_low"] > 0.4 and near["ci90_high"] < 0.6
    with pytest.raises(ValueError, match="margin"):
        mrmc.tost_vs_chance(single, margin=0.7)
