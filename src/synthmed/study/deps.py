"""Request dependencies of the study app: database session, current reader/admin, CSRF check, page rendering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from synthmed.study import crud
from synthmed.study.db import Admin, Reader
from synthmed.study.security import csrf_ok, csrf_token


def get_db(request: Request) -> Iterator[Session]:
    """A database session per request; routes commit their writes before they respond."""
    with request.app.state.sessionmaker() as session:
        request.state.db = session  # `render` reuses it: a second session per request can starve the pool
        try:
            yield session
        finally:
            request.state.db = None  # error pages rendered after this use the app's study title


DbDep = Annotated[Session, Depends(get_db)]


def _redirect(location: str) -> HTTPException:
    return HTTPException(status_code=303, headers={"Location": location})


def current_reader(request: Request, db: DbDep) -> Reader:
    """The logged-in reader, else a redirect to the login page."""
    if request.session.get("role") != "reader":
        raise _redirect("/login")
    reader = db.get(Reader, request.session.get("uid"))
    if reader is None or request.session.get("epoch") != reader.session_epoch:  # revoked by logout/re-invitation
        request.session.clear()
        raise _redirect("/login")
    return reader


def current_admin(request: Request, db: DbDep) -> Admin:
    """The logged-in organiser, else a redirect to the admin login page."""
    if request.session.get("role") != "admin":
        raise _redirect("/admin/login")
    admin = db.get(Admin, request.session.get("uid"))
    if admin is None or request.session.get("epoch") != admin.session_epoch:  # revoked by logout/re-invitation
        request.session.clear()
        raise _redirect("/admin/login")
    return admin


ReaderDep = Annotated[Reader, Depends(current_reader)]
AdminDep = Annotated[Admin, Depends(current_admin)]


def csrf_protect(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> None:
    """Reject a POST whose form lacks the session's CSRF token (403)."""
    if not csrf_ok(request.session, csrf_token):
        raise HTTPException(
            status_code=403,
            detail="The form expired or did not come from this site. Go back, reload the page and try again.",
        )


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """Render a page with the CSRF token, role and study in its context."""
    context = context or {}
    study = context.get("study")
    if study is None:
        session = getattr(request.state, "db", None)
        study = crud.get_study(session=session) if session is not None else request.app.state.study_title
    base = {
        "csrf_token": csrf_token(request.session),
        "role": request.session.get("role"),
        "user_name": request.session.get("name", ""),
        "study": study,
    }
    return request.app.state.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
