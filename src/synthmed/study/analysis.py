"""The full result of a study as one nested dict: verdict, discrimination (MRMC), accuracy, agreement, findings."""

from __future__ import annotations

from typing import Any

from synthmed.study import agreement, discrimination, stats

DEFAULT_MARGIN_AUC = 0.1


def _all_synthetic_verdict(pooled: dict[str, Any]) -> str:
    fake, real = pooled["sensitivity"], pooled["synthetic_called_real"]
    return (
        f"All images were synthetic: readers called {fake['value']:.0%} of them fake "
        f"(95% CI {fake['ci95_low']:.0%}-{fake['ci95_high']:.0%}) and {real['value']:.0%} real; "
        "with no real images there is no real-vs-synthetic comparison."
    )


def analyze(
    *,
    answers: list[dict],
    cases: list[dict],
    readers: list[str],
    all_synthetic: bool = False,
    closed: bool = False,
    exclude: list[str] | tuple[str, ...] = (),
    margin_auc: float = DEFAULT_MARGIN_AUC,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """What `synthmed study analyze --json` writes; readers in `exclude` are removed before any statistic."""
    unknown = sorted(set(exclude) - set(readers))
    if unknown:
        raise ValueError(f"cannot exclude unknown reader(s) {unknown}; readers are {readers}.")
    readers = [name for name in readers if name not in set(exclude)]
    answers = [row for row in answers if row["reader"] in set(readers)]
    pooled = stats.reader_metrics(answers)
    pooled["accuracy_clustered"] = stats.clustered_accuracy(answers)
    by_reader = {name: [r for r in answers if r["reader"] == name] for name in readers}
    disc = None
    if not answers:
        verdict = "No answers yet."
    elif all_synthetic:
        verdict = _all_synthetic_verdict(pooled)
    else:
        disc = discrimination.analyse(answers, readers=readers, cases=cases, margin_auc=margin_auc, alpha=alpha)
        verdict = disc["verdict"]
    return {
        "verdict": verdict,
        "study": {
            "cases": len(cases),
            "real": sum(not c["is_synthetic"] for c in cases),
            "synthetic": sum(bool(c["is_synthetic"]) for c in cases),
            "readers": len(readers),
            "excluded_readers": list(exclude),
            "answers": len(answers),
            "all_synthetic": all_synthetic,
            "closed": closed,
            "margin_auc": margin_auc,
        },
        "discrimination": disc,
        "pooled": pooled,
        "per_reader": {name: stats.reader_metrics(rows) for name, rows in by_reader.items()},
        "confusion": {"pooled": stats.confusion(answers), **{n: stats.confusion(r) for n, r in by_reader.items()}},
        "pooled_by_modality_class": {
            f"{m} / {c}": stats.reader_metrics([r for r in answers if (r["modality"], r["label"]) == (m, c)])
            for m, c in sorted({(r["modality"], r["label"]) for r in answers})
        },
        "counts_by_stratum": {
            "pooled": stats.counts_by_stratum(answers),
            **{n: stats.counts_by_stratum(r) for n, r in by_reader.items()},
        },
        "agreement": agreement.agreement(answers, readers),
        "findings": stats.findings(answers),
    }
