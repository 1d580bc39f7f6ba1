"""The reliability and security findings of issue 9, one test each (SQLite and PostgreSQL where a database matters)."""

from __future__ import annotations

import csv
import io
import statistics
import time

import pytest
from fastapi.testclient import TestClient

from study.concurrent import simultaneous_accept, simultaneous_get
from study.helpers import (
    ADMIN_PASSWORD,
    PASSWORD,
    accept_invitation,
    answer,
    csrf_of,
    login_admin,
    login_reader,
    make_study,
    new_client,
)
from synthmed.study.app import create_app


def _client_at(app, address: str) -> TestClient:  # noqa: ANN001
    return TestClient(app, base_url="http://testserver", follow_redirects=True, client=(address, 40000))


@pytest.mark.parametrize("readers", [20, 50])
def test_simultaneous_readers_get_no_server_error(tmp_path, image_folders, database_url, readers):
    """Every reader opening the review page at the same moment: no 5xx (render used to take a 2nd connection)."""
    names = [f"reader{k:02d}" for k in range(readers)]
    created, settings = make_study(tmp_path, image_folders, database_url, readers=names)
    app = create_app(settings)
    try:
        started = time.monotonic()
        statuses = simultaneous_get(app, created.invitations, "/reader/review", PASSWORD)
        elapsed_s = time.monotonic() - started
    finally:
        app.state.engine.dispose()
    assert statuses == [200] * readers
    assert elapsed_s < 25, f"{readers} readers took {elapsed_s:.1f} s (pool starvation?)"


def test_lockout_is_per_account_and_address_with_backoff(app):
    attacker, admin_elsewhere = _client_at(app, "203.0.113.9"), _client_at(app, "198.51.100.7")
    for _ in range(5):
        assert login_admin(attacker, "wrong password!").status_code == 401
    blocked = login_admin(attacker, ADMIN_PASSWORD)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert login_admin(admin_elsewhere).status_code == 200, "the real admin was locked out from another address"
    limiter = app.state.limiter
    key = limiter.key("admin", "admin", "203.0.113.9")
    first = limiter.blocked_for_s(key)
    limiter.fail(key)
    assert limiter.blocked_for_s(key) > 1.5 * first, "no backoff: the lock did not grow after another failure"


def test_forwarded_for_is_ignored_unless_a_proxy_is_configured(app):
    client = new_client(app)
    for k in range(5):
        page = client.get("/admin/login")
        response = client.post(
            "/admin/login",
            headers={"X-Forwarded-For": f"10.0.0.{k}"},
            data={"csrf_token": csrf_of(page.text), "name": "admin", "password": "wrong one!"},
        )
        assert response.status_code == 401
    assert login_admin(client).status_code == 429, "rotating X-Forwarded-For bypassed the limit"


def test_serve_trusts_forwarded_headers_only_from_configured_proxies(monkeypatch, tmp_path, image_folders):
    import uvicorn

    from synthmed.cli import build_parser

    study = make_study(tmp_path, image_folders, None)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    args = build_parser().parse_args(["study", "serve", str(study[0].study_dir)])
    args.func(args)
    assert seen["proxy_headers"] is False
    args = build_parser().parse_args(["study", "serve", str(study[0].study_dir), "--trusted-proxy", "10.1.2.3"])
    args.func(args)
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.1.2.3"


def test_login_takes_as_long_for_unknown_names(app, study):
    app.state.limiter.max_attempts = 10_000
    accept_invitation(new_client(app), study[0].invitations["alice"])
    client = new_client(app)

    def median_s(name: str) -> float:
        times = []
        for _ in range(7):
            page = client.get("/login")
            started = time.perf_counter()
            client.post("/login", data={"csrf_token": csrf_of(page.text), "name": name, "password": "wrong one!"})
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    known, unknown, pending = median_s("alice"), median_s("nobody-by-this-name"), median_s("bob")
    assert 0.5 < unknown / known < 2.0, f"unknown name {unknown * 1e3:.0f} ms vs known {known * 1e3:.0f} ms"
    assert 0.5 < pending / known < 2.0, f"invited-not-accepted {pending * 1e3:.0f} ms vs {known * 1e3:.0f} ms"


def test_logout_revokes_the_session_on_the_server(app, reader_client):
    cookie = reader_client.cookies.get("synthmed_study")
    page = reader_client.get("/reader/review")
    assert reader_client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 200
    replay = new_client(app)
    replay.cookies.set("synthmed_study", cookie)
    assert "/login" in str(replay.get("/reader/review").url), "the old cookie still works after logout"


def test_new_invitation_revokes_old_sessions_and_password(app, reader_client, admin_client):
    page = admin_client.get("/admin")
    response = admin_client.post("/admin/readers/invite", data={"csrf_token": csrf_of(page.text), "name": "alice"})
    assert response.status_code == 200 and "/invite/" in response.text
    assert "/login" in str(reader_client.get("/reader/review").url)
    assert login_reader(new_client(app), "alice").status_code == 401


@pytest.mark.parametrize("times", [6])
def test_invitation_is_used_once_under_concurrency(app, study, times):
    statuses = simultaneous_accept(app, study[0].invitations["bob"], PASSWORD, times=times)
    assert sorted(statuses) == [303] + [404] * (times - 1), statuses


def test_csv_export_neutralises_formulas(app, reader_client, admin_client):
    payloads = ['=HYPERLINK("http://evil","x")', "@SUM(A1:A2)", "+1+1", "-2+3", "\t=cmd"]
    for position, text in enumerate(payloads, start=1):
        assert answer(reader_client, position, "fake", 4, findings=text).status_code == 200
    page = admin_client.get("/admin")
    admin_client.post("/admin/close", data={"csrf_token": csrf_of(page.text)})
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/admin/export.csv").text)))
    cells = [value for row in rows for value in row.values() if value]
    assert not [c for c in cells if c[0] in "=+-@\t\r"], "a cell starts with a formula character"
    assert {r["findings"] for r in rows if r["findings"]} == {"'" + p.strip() for p in payloads}  # stored stripped


@pytest.mark.parametrize("position", ["0", "-1", "99999999999999999999", "4294967297"])
def test_out_of_range_positions_are_404(reader_client, position):
    assert reader_client.get(f"/reader/case/{position}").status_code == 404
    page = reader_client.get("/reader/case/1")
    response = reader_client.post(
        f"/reader/case/{position}", data={"csrf_token": csrf_of(page.text), "call": "real", "confidence": "3"}
    )
    assert response.status_code == 404


def test_error_responses_carry_the_security_headers(app, reader_client, monkeypatch):
    from synthmed.study import crud

    for response in (reader_client.get("/no/such/page"), new_client(app).get("/image/xxxxxxxxxxxx")):
        assert response.status_code == 404 and "default-src" in response.headers["Content-Security-Policy"]

    def broken(**_kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(crud, "reader_answers", broken)
    crashing = TestClient(app, raise_server_exceptions=False, follow_redirects=True)
    crashing.cookies = reader_client.cookies
    response = crashing.get("/reader/review")
    assert response.status_code == 500 and "database on fire" not in response.text
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert header in response.headers, f"500 response lacks {header}"


@pytest.mark.parametrize("name", ["dr/slash", "a?b#c%20d", "O'Brien <b>x</b>", "名前 ü", "..", "x\\y"])
def test_reader_names_with_any_characters_can_be_invited_again(app, admin_client, name):
    page = admin_client.get("/admin")
    added = admin_client.post("/admin/readers", data={"csrf_token": csrf_of(page.text), "name": name})
    assert added.status_code == 200
    again = admin_client.post("/admin/readers/invite", data={"csrf_token": csrf_of(added.text), "name": name})
    assert again.status_code == 200 and "/invite/" in again.text
    token = again.text.split("/invite/")[1].split("<")[0].strip()
    reader = new_client(app)
    assert accept_invitation(reader, token).status_code == 200
    assert "/reader/case/" in str(reader.get("/reader/resume").url)
