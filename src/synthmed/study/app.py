"""`create_app(settings)`: the blinded reader-study web app (FastAPI, Jinja2 pages, signed-cookie sessions)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synthmed.study import crud
from synthmed.study.db import init_db, make_engine, make_sessionmaker
from synthmed.study.deps import render
from synthmed.study.routes import admin, auth, reader
from synthmed.study.security import RateLimiter
from synthmed.study.settings import StudySettings

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class StudyTitle:
    """The study as error pages show it, read once at start (the name never changes)."""

    name: str
    closed: bool = False
    educational: bool = False


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding SECURITY_HEADERS (and `Cache-Control: no-store` unless set) to responses."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in {**SECURITY_HEADERS, "Cache-Control": "no-store"}.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # An unhandled error: answer a plain 500 with the headers here (Starlette's own 500 page is made
            # outside every middleware, so it would go out bare), log the traceback, reveal nothing.
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await PlainTextResponse(
                "Internal server error. The organiser can find the details in the server log.", status_code=500
            )(scope, receive, send_with_headers)


def create_app(settings: StudySettings) -> FastAPI:
    """A new app bound to the study in `settings` (its own engine, limiter and templates; no globals)."""
    if not settings.images_dir.is_dir():
        raise FileNotFoundError(
            f"{settings.images_dir} not found: {settings.study_dir} is not a study folder. "
            "Make one with `synthmed study create`."
        )
    engine = make_engine(settings.resolved_database_url(), busy_timeout_s=settings.sqlite_busy_timeout_s)
    init_db(engine)
    with make_sessionmaker(engine)() as session:
        study = crud.get_study(session=session)
        title = StudyTitle(name=study.name, closed=study.closed, educational=study.educational)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        yield
        engine.dispose()

    app = FastAPI(title="synthmed reader study", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.study_title = title  # what error pages show without touching the database
    app.state.templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
    app.state.limiter = RateLimiter(
        max_attempts=settings.login_max_attempts, window_s=settings.login_window_s, base_lock_s=settings.login_lock_s
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie="synthmed_study",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.https_only,
    )

    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 303 and exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        response = render(
            request, "error.html", {"status": exc.status_code, "message": exc.detail}, status_code=exc.status_code
        )
        response.headers.update(exc.headers or {})  # e.g. Retry-After of a 429
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return render(request, "error.html", {"status": 400, "message": "The request was malformed."}, status_code=400)

    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    for module in (auth, reader, admin):
        app.include_router(module.router)
    return app
