"""How many readers and cases a study needs to show "indistinguishable within margin m" (power of the TOST).

Model (Obuchowski-Rockette, one treatment): reader i's AUC = mu + R_i + e_i with Var(R) = reader_var,
Var(e) = error_var_per_case / cases and Cov(e_i, e_j) = corr2 * Var(e). The analysis estimates
SE^2 = MS(R)/r + Cov2 with E[MS(R)] = reader_var + Var(e) - Cov2 and Hillis df; the power of the two one-sided
t tests at true AUC 0.5 + delta is P(t > t_crit - (m - delta)/SE) + P(t > t_crit - (m + delta)/SE) - 1.
Defaults: null-hypothesis Mann-Whitney variance for balanced classes ((C + 1) / (3 C^2), i.e. about 1/3 per
case) and the Van Dyke reader variance and Cov2 correlation (Hillis's OR-DBM MRMC output), unless a pilot
study supplies its own estimates (`PlanInputs.from_pilot`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from synthmed.study.mrmc import SingleTreatment


class PlanInputs(BaseModel):
    """What the planner assumes; every variance is in AUC^2 units."""

    margin_auc: float = Field(gt=0, lt=0.5, description="equivalence margin around AUC 0.5")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    true_auc: float = Field(default=0.5, gt=0, lt=1, description="AUC the readers really achieve")
    reader_var: float = Field(default=0.0015, ge=0, description="between-reader variance of true AUCs")
    error_var_per_case: float = Field(default=1 / 3, gt=0, description="Var(AUC) x cases for one reader")
    corr2: float = Field(default=0.43, ge=0, le=1, description="Cov2 / Var: error correlation between readers")
    source: str = "defaults (null Mann-Whitney variance; Van Dyke reader variance and Cov2 correlation)"

    @classmethod
    def from_pilot(cls, result: SingleTreatment, *, cases: int, margin_auc: float, **overrides) -> PlanInputs:
        """Variance components estimated from a finished (pilot) study's random-reader analysis."""
        var = max(result.var, 1e-12)
        return cls(
            margin_auc=margin_auc,
            reader_var=max(result.ms_r - result.var + result.cov2, 0.0),
            error_var_per_case=var * cases,
            corr2=float(np.clip(result.cov2 / var, 0.0, 1.0)),
            true_auc=result.auc,
            source=f"pilot study ({len(result.reader_aucs)} readers, {cases} cases)",
            **overrides,
        )


@dataclass(frozen=True)
class PlanRow:
    """The fewest cases that give the target power with this many readers (None: no number of cases does)."""

    readers: int
    cases: int | None
    power: float
    stderr: float | None


def power(inputs: PlanInputs, *, readers: int, cases: int) -> tuple[float, float, float]:
    """(power, expected SE, Hillis df) of the equivalence test with `readers` readers each reading `cases` cases."""
    if readers < 2 or cases < 4:
        raise ValueError("a random-reader, random-case study needs at least 2 readers and 4 cases.")
    var = inputs.error_var_per_case / cases
    cov2 = inputs.corr2 * var
    ms_r = inputs.reader_var + var - cov2
    stderr = float(np.sqrt(ms_r / readers + cov2))
    df = (ms_r + readers * cov2) ** 2 / (ms_r**2 / (readers - 1)) if ms_r > 0 else float("inf")
    t_crit = stats.t.ppf(1 - inputs.alpha, df)
    delta = abs(inputs.true_auc - 0.5)
    value = (
        stats.t.cdf((inputs.margin_auc - delta) / stderr - t_crit, df)
        + stats.t.cdf((inputs.margin_auc + delta) / stderr - t_crit, df)
        - 1
    )
    return max(0.0, float(value)), stderr, float(df)


def cases_needed(inputs: PlanInputs, *, readers: int, max_cases: int = 20_000) -> PlanRow:
    """The fewest (even) cases reaching `inputs.power` with `readers` readers, by bisection on cases."""
    best_power = power(inputs, readers=readers, cases=max_cases)[0]
    if best_power < inputs.power:
        return PlanRow(readers=readers, cases=None, power=round(best_power, 3), stderr=None)
    low, high = 2, max_cases // 2  # in pairs of cases (one real, one synthetic)
    while low < high:
        middle = (low + high) // 2
        if power(inputs, readers=readers, cases=2 * middle)[0] >= inputs.power:
            high = middle
        else:
            low = middle + 1
    achieved, stderr, _ = power(inputs, readers=readers, cases=2 * low)
    return PlanRow(readers=readers, cases=2 * low, power=round(achieved, 3), stderr=round(stderr, 4))


def plan(inputs: PlanInputs, *, readers: list[int] | None = None) -> list[PlanRow]:
    """Cases needed for each number of readers (default 3, 4, 5, 6, 8, 10, 12, 15, 20)."""
    return [cases_needed(inputs, readers=r) for r in (readers or [3, 4, 5, 6, 8, 10, 12, 15, 20])]


def describe(inputs: PlanInputs, rows: list[PlanRow]) -> str:
    """The plan as text: assumptions, then one line per number of readers."""
    lines = [
        f"Equivalence margin {inputs.margin_auc:g} around AUC 0.5 (alpha {inputs.alpha:g} per one-sided test, "
        f"power {inputs.power:.0%}, true AUC {inputs.true_auc:.3f}).",
        f"Assumed: reader variance {inputs.reader_var:.5f}, Var(AUC) x cases {inputs.error_var_per_case:.4f}, "
        f"Cov2/Var {inputs.corr2:.2f}; from {inputs.source}.",
        "readers  cases (real + synthetic, each read by every reader)  power",
    ]
    for row in rows:
        cases = f"{row.cases:>6}" if row.cases else "   n/a  (not reachable with this few readers)"
        lines.append(f"{row.readers:>7}  {cases}  {row.power:.2f}")
    return "\n".join(lines)
