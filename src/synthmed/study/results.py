"""Read a study database into the statistics of `synthmed.study.stats` and its exports."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from synthmed.study import crud, stats


def study_results(*, session: Session) -> dict[str, Any]:
    """The analysis of every answer in the database (see `stats.analyze`)."""
    study = crud.get_study(session=session)
    result = stats.analyze(answers=crud.answer_rows(session=session), cases=crud.case_rows(session=session),
                           readers=crud.reader_names(session=session), all_synthetic=study.all_synthetic,
                           closed=study.closed)
    result["study"]["name"] = study.name
    return result


def study_csv(*, session: Session) -> str:
    """The private per-answer export with the truth (CSV text)."""
    return stats.answers_csv(crud.answer_rows(session=session))
