"""Login, logout and one-time invitations, with failed logins throttled per account and address."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from synthmed.study import crud
from synthmed.study.deps import DbDep, csrf_protect, render
from synthmed.study.security import csrf_token

router = APIRouter()
FormStr = Annotated[str, Form()]


def _start_session(request: Request, *, role: str, uid: int, name: str, epoch: int) -> None:
    """A fresh session (new CSRF token) for the user who just proved who they are."""
    request.session.clear()
    request.session.update({"role": role, "uid": uid, "name": name, "epoch": epoch})
    csrf_token(request.session)


def _client_ip(request: Request) -> str:
    """The socket peer (uvicorn replaces it from X-Forwarded-For only for `--trusted-proxy` addresses)."""
    return request.client.host if request.client else "unknown"


def _throttle_key(request: Request, role: str, name: str) -> str:
    key = request.app.state.limiter.key(role, name, _client_ip(request))
    wait_s = request.app.state.limiter.begin(key)
    if wait_s > 0:
        raise HTTPException(
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait_s))},
            detail=f"Too many failed sign-ins for this name from your address. Try again in "
            f"{math.ceil(wait_s)} s, or ask the organiser for a new invitation.",
        )
    return key


@router.get("/")
def home(request: Request) -> RedirectResponse:
    role = str(request.session.get("role"))
    return RedirectResponse({"reader": "/reader/resume", "admin": "/admin"}.get(role, "/login"), status_code=303)


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", {"action": "/login", "title": "Reader sign-in", "user_label": "Name"})


@router.post("/login", dependencies=[Depends(csrf_protect)])
def login(request: Request, db: DbDep, name: FormStr = "", password: FormStr = "") -> Response:
    key = _throttle_key(request, "reader", name)
    try:
        return _reader_login(request, db, key, name, password)
    finally:
        request.app.state.limiter.end(key)


def _reader_login(request: Request, db: DbDep, key: str, name: str, password: str) -> Response:
    reader = crud.authenticate_reader(session=db, name=name, password=password)
    if reader is None:
        request.app.state.limiter.fail(key)
        return render(
            request,
            "login.html",
            {
                "action": "/login",
                "title": "Reader sign-in",
                "user_label": "Name",
                "error": "Unknown name or wrong password.",
                "name": name,
            },
            status_code=401,
        )
    request.app.state.limiter.reset(key)
    _start_session(request, role="reader", uid=reader.id, name=reader.name, epoch=reader.session_epoch)
    return RedirectResponse("/reader/resume", status_code=303)


@router.get("/admin/login")
def admin_login_page(request: Request) -> Response:
    return render(
        request, "login.html", {"action": "/admin/login", "title": "Organiser sign-in", "user_label": "User name"}
    )


@router.post("/admin/login", dependencies=[Depends(csrf_protect)])
def admin_login(request: Request, db: DbDep, name: FormStr = "", password: FormStr = "") -> Response:
    key = _throttle_key(request, "admin", name)
    try:
        return _admin_login(request, db, key, name, password)
    finally:
        request.app.state.limiter.end(key)


def _admin_login(request: Request, db: DbDep, key: str, name: str, password: str) -> Response:
    admin = crud.authenticate_admin(session=db, username=name.strip(), password=password)
    if admin is None:
        request.app.state.limiter.fail(key)
        return render(
            request,
            "login.html",
            {
                "action": "/admin/login",
                "title": "Organiser sign-in",
                "user_label": "User name",
                "error": "Unknown user or wrong password.",
                "name": name,
            },
            status_code=401,
        )
    request.app.state.limiter.reset(key)
    _start_session(request, role="admin", uid=admin.id, name=admin.username, epoch=admin.session_epoch)
    return RedirectResponse("/admin", status_code=303)


@router.post("/logout", dependencies=[Depends(csrf_protect)])
def logout(request: Request, db: DbDep) -> RedirectResponse:
    role, uid = request.session.get("role"), request.session.get("uid")
    target = "/admin/login" if role == "admin" else "/login"
    if role in ("reader", "admin") and isinstance(uid, int):
        crud.revoke_sessions(session=db, role=role, uid=uid)  # a copied cookie stops working too
        db.commit()
    request.session.clear()
    return RedirectResponse(target, status_code=303)


@router.get("/invite/{token}")
def invitation_page(request: Request, token: str, db: DbDep) -> Response:
    reader = crud.reader_for_invitation(session=db, token=token)
    if reader is None:
        raise HTTPException(
            status_code=404,
            detail="This invitation is unknown or has already been used. "
            "Sign in with your name and password, or ask the organiser "
            "for a new invitation.",
        )
    return render(request, "invite.html", {"reader_name": reader.name, "token": token})


@router.post("/invite/{token}", dependencies=[Depends(csrf_protect)])
def accept_invitation(
    request: Request, token: str, db: DbDep, password: FormStr = "", confirm: FormStr = ""
) -> Response:
    reader = crud.reader_for_invitation(session=db, token=token)
    if reader is None:
        raise HTTPException(status_code=404, detail="This invitation is unknown or has already been used.")
    error = (
        "Choose a password of at least 8 characters."
        if len(password) < 8
        else "The two passwords differ."
        if password != confirm
        else None
    )
    if error:
        return render(
            request, "invite.html", {"reader_name": reader.name, "token": token, "error": error}, status_code=400
        )
    reader = crud.accept_invitation(session=db, token=token, password=password)
    db.commit()
    if reader is None:  # another request used it a moment ago
        raise HTTPException(status_code=404, detail="This invitation has already been used.")
    _start_session(request, role="reader", uid=reader.id, name=reader.name, epoch=reader.session_epoch)
    return RedirectResponse("/reader/resume", status_code=303)
