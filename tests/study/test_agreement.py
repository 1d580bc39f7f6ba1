"""Cohen's kappa, Fleiss' kappa and Krippendorff's alpha reproduce published textbook values to 3 decimals.

Sources (data and published values in tests/study/data/*.csv, each file names its source):
Fleiss (1971) Table 1 (kappa 0.430); the Wikipedia "Fleiss' kappa" worked example (0.210); the Wikipedia
"Cohen's kappa" examples (0.4, 0.1304, 0.2593); Krippendorff (2011) examples A and C (0.095; 0.743, 0.815,
0.849, 0.797).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthmed.study import agreement

DATA = Path(__file__).parent / "data"


def test_fleiss_1971_psychiatric_diagnoses():
    ratings = pd.read_csv(DATA / "fleiss1971.csv", comment="#").to_numpy() - 1
    assert ratings.shape == (30, 6)
    assert agreement.fleiss(ratings, n_categories=5) == pytest.approx(0.430, abs=5e-4)


def test_fleiss_wikipedia_worked_example():
    counts = pd.read_csv(DATA / "fleiss_wikipedia.csv", comment="#").to_numpy()
    # Expand each subject's category counts into 14 individual ratings.
    ratings = np.array([np.repeat(np.arange(5), row) for row in counts])
    assert ratings.shape == (10, 14)
    assert agreement.fleiss(ratings, n_categories=5) == pytest.approx(0.210, abs=5e-4)


@pytest.mark.parametrize("example", ["simple", "same_percentages_1", "same_percentages_2"])
def test_cohen_wikipedia_examples(example):
    table = pd.read_csv(DATA / "cohen_wikipedia.csv", comment="#").set_index("example").loc[example]
    first, second = [], []
    for cell, (a, b) in {
        "yes_yes": ("yes", "yes"),
        "yes_no": ("yes", "no"),
        "no_yes": ("no", "yes"),
        "no_no": ("no", "no"),
    }.items():
        first += [a] * int(table[cell])
        second += [b] * int(table[cell])
    kappa = agreement.cohen(first, second, labels=["yes", "no"])
    assert kappa == pytest.approx(table["published_kappa"], abs=5e-4)


@pytest.mark.parametrize(
    "level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_2011_example_c(level, published):
    data = pd.read_csv(DATA / "krippendorff2011.csv", comment="#").set_index("observer")
    reliability = data.loc[["A", "B", "C", "D"]].to_numpy(dtype=float)
    assert agreement.alpha(reliability, level=level) == pytest.approx(published, abs=5e-4)


def test_krippendorff_2011_example_a_binary():
    data = pd.read_csv(DATA / "krippendorff2011.csv", comment="#").set_index("observer")
    reliability = data.loc[["A2", "B2"]].iloc[:, :10].to_numpy(dtype=float)
    assert agreement.alpha(reliability) == pytest.approx(0.095, abs=5e-4)
    assert agreement.alpha(np.zeros((2, 4))) is None  # one category only: undefined, not an error
