"""Read a study database into `synthmed.study.analysis` and its exports."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from synthmed.study import analysis, crud, stats


def study_results(
    *, session: Session, exclude: list[str] | tuple[str, ...] = (), margin_auc: float | None = None
) -> dict[str, Any]:
    """The analysis of every answer in the database (see `analysis.analyze`), with the blinding audit."""
    study = crud.get_study(session=session)
    result = analysis.analyze(
        answers=crud.answer_rows(session=session),
        cases=crud.case_rows(session=session),
        readers=crud.reader_names(session=session),
        all_synthetic=study.all_synthetic,
        closed=study.closed,
        exclude=exclude,
        margin_auc=study.margin_auc if margin_auc is None else margin_auc,
    )
    result["study"]["name"] = study.name
    result["study"]["margin_auc_set_at_create"] = study.margin_auc
    result["blinding_audit"] = json.loads(study.blinding_audit) if study.blinding_audit else None
    audit = result["blinding_audit"]
    if audit and audit.get("overridden"):
        result["verdict"] += (
            f" Caution: the blinding audit found the sides separable from file features alone "
            f"({audit['summary']}) and the organiser overrode it."
        )
    return result


def study_csv(*, session: Session) -> str:
    """The private per-answer export with the truth (CSV text)."""
    return stats.answers_csv(crud.answer_rows(session=session))
