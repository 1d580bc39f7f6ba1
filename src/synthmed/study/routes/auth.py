"""Login, logout and one-time invitations, with per-IP and per-user rate limiting of failed logins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from synthmed.study import crud
from synthmed.study.deps import DbDep, csrf_protect, render
from synthmed.study.security import csrf_token

router = APIRouter()
FormStr = Annotated[str, Form()]


def _start_session(request: Request, *, role: str, uid: int, name: str) -> None:
    """A fresh session (new CSRF token) for the user who just proved who they are."""
    request.session.clear()
    request.session.update({"role": role, "uid": uid, "name": name})
    csrf_token(request.session)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_rate(request: Request, user_key: str) -> None:
    if request.app.state.limiter.blocked(f"ip:{_client_ip(request)}", user_key):
        raise HTTPException(status_code=429, detail="Too many failed logins. Wait a few minutes and try again.")


@router.get("/")
def home(request: Request) -> RedirectResponse:
    role = request.session.get("role")
    return RedirectResponse({"reader": "/reader/resume", "admin": "/admin"}.get(role, "/login"), status_code=303)


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", {"action": "/login", "title": "Reader sign-in", "user_label": "Name"})


@router.post("/login", dependencies=[Depends(csrf_protect)])
def login(request: Request, db: DbDep, name: FormStr = "", password: FormStr = "") -> Response:
    user_key = f"reader:{name.strip().lower()}"
    _check_rate(request, user_key)
    reader = crud.authenticate_reader(session=db, name=name, password=password)
    if reader is None:
        request.app.state.limiter.fail(f"ip:{_client_ip(request)}", user_key)
        return render(request, "login.html", {"action": "/login", "title": "Reader sign-in", "user_label": "Name",
                                              "error": "Unknown name or wrong password.", "name": name}, status_code=401)
    request.app.state.limiter.reset(user_key)
    _start_session(request, role="reader", uid=reader.id, name=reader.name)
    return RedirectResponse("/reader/resume", status_code=303)


@router.get("/admin/login")
def admin_login_page(request: Request) -> Response:
    return render(request, "login.html", {"action": "/admin/login", "title": "Organiser sign-in",
                                          "user_label": "User name"})


@router.post("/admin/login", dependencies=[Depends(csrf_protect)])
def admin_login(request: Request, db: DbDep, name: FormStr = "", password: FormStr = "") -> Response:
    user_key = f"admin:{name.strip().lower()}"
    _check_rate(request, user_key)
    admin = crud.authenticate_admin(session=db, username=name.strip(), password=password)
    if admin is None:
        request.app.state.limiter.fail(f"ip:{_client_ip(request)}", user_key)
        return render(request, "login.html", {"action": "/admin/login", "title": "Organiser sign-in",
                                              "user_label": "User name",
                                              "error": "Unknown user or wrong password.", "name": name}, status_code=401)
    request.app.state.limiter.reset(user_key)
    _start_session(request, role="admin", uid=admin.id, name=admin.username)
    return RedirectResponse("/admin", status_code=303)


@router.post("/logout", dependencies=[Depends(csrf_protect)])
def logout(request: Request) -> RedirectResponse:
    target = "/admin/login" if request.session.get("role") == "admin" else "/login"
    request.session.clear()
    return RedirectResponse(target, status_code=303)


@router.get("/invite/{token}")
def invitation_page(request: Request, token: str, db: DbDep) -> Response:
    reader = crud.reader_for_invitation(session=db, token=token)
    if reader is None:
        raise HTTPException(status_code=404, detail="This invitation is unknown or has already been used. "
                                                    "Sign in with your name and password, or ask the organiser "
                                                    "for a new invitation.")
    return render(request, "invite.html", {"reader_name": reader.name, "token": token})


@router.post("/invite/{token}", dependencies=[Depends(csrf_protect)])
def accept_invitation(request: Request, token: str, db: DbDep, password: FormStr = "",
                      confirm: FormStr = "") -> Response:
    reader = crud.reader_for_invitation(session=db, token=token)
    if reader is None:
        raise HTTPException(status_code=404, detail="This invitation is unknown or has already been used.")
    error = ("Choose a password of at least 8 characters." if len(password) < 8
             else "The two passwords differ." if password != confirm else None)
    if error:
        return render(request, "invite.html", {"reader_name": reader.name, "token": token, "error": error},
                      status_code=400)
    crud.accept_invitation(session=db, token=token, password=password)
    db.commit()
    _start_session(request, role="reader", uid=reader.id, name=reader.name)
    return RedirectResponse("/reader/resume", status_code=303)
