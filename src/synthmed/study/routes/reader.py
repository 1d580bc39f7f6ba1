"""Reader pages: one case at a time (viewer + answer form), review, submit, and the blinded image bytes."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from synthmed.study import crud
from synthmed.study.db import Assignment
from synthmed.study.deps import DbDep, ReaderDep, csrf_protect, render

router = APIRouter()
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
IMAGE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
FormStr = Annotated[str, Form()]
MAX_POSITION = 1_000_000


def _case_or_404(db: DbDep, reader_id: int, position: int):  # noqa: ANN202
    if not 1 <= position <= MAX_POSITION:  # a huge number would overflow the database integer (500)
        raise HTTPException(status_code=404, detail="There is no such case in your study.")
    case = crud.reader_case(session=db, reader_id=reader_id, position=position)
    if case is None:
        raise HTTPException(status_code=404, detail="There is no such case in your study.")
    return case


def _next_position(db: DbDep, reader_id: int, position: int, total: int) -> int | None:
    """The next unanswered position after `position`, wrapping around; None when all are answered."""
    answered = crud.reader_answers(session=db, reader_id=reader_id)
    order = dict(
        db.execute(select(Assignment.position, Assignment.case_id).where(Assignment.reader_id == reader_id)).all()
    )
    for step in range(1, total + 1):
        candidate = (position - 1 + step) % total + 1
        if order[candidate] not in answered:
            return candidate
    return None


@router.get("/reader/resume")
def resume(reader: ReaderDep, db: DbDep) -> RedirectResponse:
    position = crud.first_unanswered_position(session=db, reader_id=reader.id)
    if position is None or reader.submitted_utc is not None:
        return RedirectResponse("/reader/review", status_code=303)
    return RedirectResponse(f"/reader/case/{position}", status_code=303)


def _case_page(
    request: Request,
    db: DbDep,
    reader,
    position: int,
    *,
    error: str | None = None,  # noqa: ANN001
    status_code: int = 200,
) -> Response:
    study = crud.get_study(session=db)
    case = _case_or_404(db, reader.id, position)
    answers = crud.reader_answers(session=db, reader_id=reader.id)
    total = crud.case_count(session=db, reader_id=reader.id)
    answer = answers.get(case.id)
    locked = study.closed or reader.submitted_utc is not None or (study.educational and answer is not None)
    reveal = None
    if study.educational and answer is not None:
        reveal = {
            "truth": "synthetic" if case.is_synthetic else "real",
            "correct": answer.call == ("fake" if case.is_synthetic else "real"),
        }
    return render(
        request,
        "case.html",
        {
            "position": position,
            "total": total,
            "answered": len(answers),
            "answer": answer,
            "locked": locked,
            "image_url": f"/image/{case.token}",
            "reveal": reveal,
            "error": error,
            "prev_position": position - 1 if position > 1 else None,
            "next_position": position + 1 if position < total else None,
            "conditions": study.condition_list,
            "study": study,
        },
        status_code=status_code,
    )


@router.get("/reader/case/{position}")
def case_page(request: Request, position: int, reader: ReaderDep, db: DbDep) -> Response:
    return _case_page(request, db, reader, position)


@router.post("/reader/case/{position}", dependencies=[Depends(csrf_protect)])
def answer_case(
    request: Request,
    position: int,
    reader: ReaderDep,
    db: DbDep,
    call: FormStr = "",
    confidence: FormStr = "",
    findings: FormStr = "",
    condition: FormStr = "",
) -> Response:
    case = _case_or_404(db, reader.id, position)
    try:
        answer = crud.AnswerIn(call=call, confidence=confidence or 0, findings=findings, condition=condition)
    except ValidationError:
        return _case_page(
            request,
            db,
            reader,
            position,
            status_code=400,
            error="Choose real, fake or unsure (R / F / U) and a confidence from 1 to 5.",
        )
    try:
        crud.save_answer(session=db, reader_id=reader.id, case_id=case.id, answer=answer)
        db.commit()
    except crud.AnswerLocked as exc:
        db.rollback()
        return _case_page(request, db, reader, position, error=str(exc), status_code=409)
    except crud.StudyError as exc:
        db.rollback()
        return _case_page(request, db, reader, position, error=str(exc), status_code=400)
    if crud.get_study(session=db).educational:
        return RedirectResponse(f"/reader/case/{position}", status_code=303)
    total = crud.case_count(session=db, reader_id=reader.id)
    following = _next_position(db, reader.id, position, total)
    return RedirectResponse("/reader/review" if following is None else f"/reader/case/{following}", status_code=303)


@router.get("/reader/review")
def review(request: Request, reader: ReaderDep, db: DbDep) -> Response:
    answers = crud.reader_answers(session=db, reader_id=reader.id)
    rows = db.execute(
        select(Assignment.position, Assignment.case_id)
        .where(Assignment.reader_id == reader.id)
        .order_by(Assignment.position)
    ).all()
    items = [{"position": pos, "answer": answers.get(case_id)} for pos, case_id in rows]
    return render(
        request,
        "review.html",
        {"items": items, "answered": len(answers), "total": len(items), "submitted": reader.submitted_utc is not None},
    )


@router.post("/reader/submit", dependencies=[Depends(csrf_protect)])
def submit(request: Request, reader: ReaderDep, db: DbDep) -> Response:
    try:
        crud.submit_reader(session=db, reader_id=reader.id)
        db.commit()
    except crud.StudyError as exc:
        db.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return RedirectResponse("/reader/review", status_code=303)


@router.get("/image/{token}")
def image(request: Request, token: str, db: DbDep) -> Response:
    """The blinded PNG, only for a reader assigned the case (or the admin); 404 for anything else."""
    role = request.session.get("role")
    if role not in ("reader", "admin") or not TOKEN_PATTERN.fullmatch(token):
        raise HTTPException(status_code=404, detail="Not found.")
    case = crud.case_for_image(
        session=db, token=token, reader_id=request.session.get("uid") if role == "reader" else None
    )
    if case is None:
        raise HTTPException(status_code=404, detail="Not found.")
    images_dir = request.app.state.settings.images_dir.resolve()
    path = (images_dir / f"{case.token}.png").resolve()
    if path.parent != images_dir or not path.is_file():
        raise HTTPException(status_code=404, detail="Not found.")
    return Response(content=path.read_bytes(), media_type="image/png", headers=IMAGE_HEADERS)
