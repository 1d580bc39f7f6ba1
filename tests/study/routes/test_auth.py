"""Login, invitations, CSRF, rate limiting and roles (on SQLite and on a real PostgreSQL server)."""

from __future__ import annotations

from study.helpers import (
    ADMIN_PASSWORD,
    PASSWORD,
    accept_invitation,
    csrf_of,
    login_admin,
    login_reader,
    new_client,
)


def test_invitation_sets_password_once_then_login_works(app, study):
    client = new_client(app)
    token = study[0].invitations["alice"]
    response = accept_invitation(client, token)
    assert response.status_code == 200 and "/reader/case/" in str(response.url)
    again = new_client(app).get(f"/invite/{token}")
    assert again.status_code == 404 and "already been used" in again.text
    other = new_client(app)
    assert login_reader(other, "alice").status_code == 200
    assert "/reader/case/" in str(other.get("/reader/resume").url)


def test_invitation_rejects_short_or_mismatched_password(app, study):
    client = new_client(app)
    token = study[0].invitations["bob"]
    page = client.get(f"/invite/{token}")
    short = client.post(
        f"/invite/{token}", data={"csrf_token": csrf_of(page.text), "password": "short", "confirm": "short"}
    )
    assert short.status_code == 400 and "at least 8" in short.text
    differ = client.post(
        f"/invite/{token}", data={"csrf_token": csrf_of(page.text), "password": PASSWORD, "confirm": PASSWORD + "x"}
    )
    assert differ.status_code == 400
    assert client.get(f"/invite/{token}").status_code == 200  # still usable


def test_wrong_password_is_401_and_unknown_invitation_404(app, study):
    client = new_client(app)
    accept_invitation(new_client(app), study[0].invitations["alice"])
    assert login_reader(client, "alice", "wrong password!").status_code == 401
    assert client.get("/invite/not-a-real-token").status_code == 404


def test_missing_or_wrong_csrf_is_403_everywhere(app, study, reader_client, admin_client):
    anonymous = new_client(app)
    assert anonymous.post("/login", data={"name": "alice", "password": PASSWORD}).status_code == 403
    anonymous.get("/login")
    assert (
        anonymous.post("/login", data={"csrf_token": "forged", "name": "alice", "password": PASSWORD}).status_code
        == 403
    )
    assert reader_client.post("/reader/case/1", data={"call": "real", "confidence": "3"}).status_code == 403
    assert (
        reader_client.post("/reader/case/1", data={"csrf_token": "x", "call": "real", "confidence": "3"}).status_code
        == 403
    )
    assert reader_client.post("/reader/submit", data={}).status_code == 403
    assert reader_client.post("/logout", data={}).status_code == 403
    assert admin_client.post("/admin/close", data={"csrf_token": "nope"}).status_code == 403
    assert admin_client.post("/admin/readers", data={"name": "mallory"}).status_code == 403
    # A token from another session is not accepted either.
    stolen = csrf_of(reader_client.get("/reader/case/1").text)
    assert admin_client.post("/admin/close", data={"csrf_token": stolen}).status_code == 403
    assert "closed" not in admin_client.get("/admin").text.split("status:")[1][:40]


def test_login_is_rate_limited_per_account_and_address(app, study):
    accept_invitation(new_client(app), study[0].invitations["alice"])
    attacker = new_client(app)
    codes = [login_reader(attacker, "alice", f"guess-{i}-wrong").status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    # The right password is refused too while this account is blocked from this address.
    assert login_reader(new_client(app), "alice").status_code == 429
    # Other accounts from the same address are not (a shared hospital NAT must not lock colleagues out).
    assert login_reader(new_client(app), "bob", "whatever-123").status_code == 401
    assert login_admin(new_client(app), ADMIN_PASSWORD).status_code == 200


def test_session_cookie_is_httponly_lax_and_signed(app, study):
    client = new_client(app)
    response = client.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    client.cookies.set("synthmed_study", "eyJyb2xlIjogImFkbWluIiwgInVpZCI6IDF9.forged.sig")
    assert "/admin/login" in str(client.get("/admin").url)


def test_https_only_setting_marks_cookie_secure(study):
    from synthmed.study.app import create_app

    settings = study[1].model_copy(update={"https_only": True})
    response = new_client(create_app(settings)).get("/login")
    assert "secure" in response.headers["set-cookie"].lower()


def test_logout_clears_the_session(reader_client):
    page = reader_client.get("/reader/review")
    response = reader_client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert "/login" in str(response.url)
    assert "/login" in str(reader_client.get("/reader/review").url)
