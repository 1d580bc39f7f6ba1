"""The planner's readers x cases reach the promised power when studies of that size are simulated."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.study import mrmc, planner


def null_study(readers: int, cases: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Readers who cannot tell the sides apart, but share a case effect (so Cov2 > 0), on 5-point ratings."""
    truth = np.arange(cases) % 2 == 1
    latent = rng.normal(0, 1, cases)[None, :] + rng.normal(0, 1, (readers, cases))
    return np.digitize(latent, [-1.2, -0.4, 0.4, 1.2]).astype(float), truth


def test_planned_study_reaches_its_power_in_simulation():
    rng = np.random.default_rng(7)
    pilot = mrmc.single_treatment(*null_study(10, 400, rng))
    inputs = planner.PlanInputs.from_pilot(pilot, cases=400, margin_auc=0.1).model_copy(update={"true_auc": 0.5})
    row = planner.cases_needed(inputs, readers=4)
    assert row.cases is not None and 20 <= row.cases <= 400 and row.power >= 0.8
    successes = 0
    trials = 200
    for _ in range(trials):
        single = mrmc.single_treatment(*null_study(4, row.cases, rng))
        successes += mrmc.tost_vs_chance(single, margin=0.1)["equivalent"]
    assert 0.7 <= successes / trials <= 0.97, f"simulated power {successes / trials:.2f} for planned {row}"


def test_more_readers_need_fewer_cases_and_reader_variance_sets_a_floor():
    inputs = planner.PlanInputs(margin_auc=0.1)
    rows = planner.plan(inputs, readers=[4, 5, 10])
    cases = [r.cases for r in rows]
    assert all(c is not None for c in cases) and cases[0] > cases[1] > cases[2]
    assert planner.power(inputs, readers=5, cases=rows[1].cases)[0] >= 0.8
    assert planner.power(inputs, readers=5, cases=rows[1].cases - 2)[0] < 0.8  # the fewest, not just enough
    hopeless = planner.PlanInputs(margin_auc=0.05, reader_var=0.01)
    assert planner.cases_needed(hopeless, readers=3).cases is None
    assert "n/a" in planner.describe(hopeless, planner.plan(hopeless, readers=[3]))


def test_planner_rejects_impossible_designs():
    with pytest.raises(ValueError, match="at least 2 readers"):
        planner.power(planner.PlanInputs(margin_auc=0.1), readers=1, cases=100)
    with pytest.raises(ValueError):
        planner.PlanInputs(margin_auc=0.6)
