"""Organiser pages: progress per reader, adding readers, closing the study, results and exports."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from synthmed.study import crud
from synthmed.study.deps import AdminDep, DbDep, csrf_protect, render
from synthmed.study.results import study_csv, study_results

router = APIRouter(prefix="/admin")
NO_STORE = {"Cache-Control": "no-store"}


def _require_closed(db: DbDep) -> None:
    if not crud.get_study(session=db).closed:
        raise HTTPException(
            status_code=409,
            detail="Results are shown once the study is closed. Close it on the "
            "admin page (or `synthmed study close`) when readers are done.",
        )


@router.get("")
def dashboard(request: Request, admin: AdminDep, db: DbDep) -> Response:
    return _dashboard(request, db)


def _dashboard(
    request: Request, db: DbDep, *, invitation: dict | None = None, error: str | None = None, status_code: int = 200
) -> Response:
    rows = crud.progress(session=db)
    return render(
        request,
        "admin.html",
        {
            "progress": rows,
            "answered": sum(r.answered for r in rows),
            "total": sum(r.total for r in rows),
            "cases": len(crud.case_rows(session=db)),
            "invitation": invitation,
            "error": error,
        },
        status_code=status_code,
    )


@router.post("/readers", dependencies=[Depends(csrf_protect)])
def add_reader(request: Request, admin: AdminDep, db: DbDep, name: Annotated[str, Form()] = "") -> Response:
    try:
        reader, token = crud.add_reader(session=db, name=name)
        db.commit()
    except crud.StudyError as exc:
        db.rollback()
        return _dashboard(request, db, error=str(exc), status_code=400)
    link = str(request.base_url).rstrip("/") + f"/invite/{token}"
    return _dashboard(request, db, invitation={"name": reader.name, "link": link})


@router.post("/readers/invite", dependencies=[Depends(csrf_protect)])
def reinvite(request: Request, admin: AdminDep, db: DbDep, name: Annotated[str, Form()] = "") -> Response:
    """A new invitation; the name travels in the form body, so any characters work (a path would break on '/')."""
    try:
        token = crud.renew_invitation(session=db, name=name)
        db.commit()
    except crud.StudyError as exc:
        db.rollback()
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    link = str(request.base_url).rstrip("/") + f"/invite/{token}"
    return _dashboard(request, db, invitation={"name": name, "link": link})


@router.post("/close", dependencies=[Depends(csrf_protect)])
def close(admin: AdminDep, db: DbDep) -> RedirectResponse:
    crud.close_study(session=db)
    db.commit()
    return RedirectResponse("/admin/results", status_code=303)


@router.get("/results")
def results(
    request: Request, admin: AdminDep, db: DbDep, exclude: Annotated[list[str] | None, Query()] = None
) -> Response:
    """The results; `?exclude=NAME` (repeatable) removes readers before the analysis."""
    _require_closed(db)
    try:
        result = study_results(session=db, exclude=exclude or [])
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return render(request, "results.html", {"results": result})


@router.get("/export.json")
def export_json(admin: AdminDep, db: DbDep) -> Response:
    _require_closed(db)
    body = json.dumps(study_results(session=db), indent=2, default=str)
    return Response(
        body,
        media_type="application/json",
        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="study.json"'},
    )


@router.get("/export.csv")
def export_csv(admin: AdminDep, db: DbDep) -> Response:
    _require_closed(db)
    return Response(
        study_csv(session=db),
        media_type="text/csv",
        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="study_answers.csv"'},
    )
