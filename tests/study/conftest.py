"""Fixtures of the study tests: tiny real/synthetic image folders, a study on SQLite or PostgreSQL, a client."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.helpers import accept_invitation, login_admin, make_image_folders, make_study, new_client
from study.pg import create_database, postgres_missing, postgres_server
from synthmed.study.app import create_app


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL prefix of a throw-away PostgreSQL server on a free loopback port (skips without the binaries)."""
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request):
    """None (SQLite inside the study folder) or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return None
    return create_database(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def image_folders(tmp_path) -> tuple[Path, Path]:
    return make_image_folders(tmp_path / "sources")


@pytest.fixture
def study(tmp_path, image_folders, database_url):
    return make_study(tmp_path, image_folders, database_url)


@pytest.fixture
def app(study):
    app = create_app(study[1])
    yield app
    app.state.engine.dispose()


@pytest.fixture
def reader_client(app, study):
    """A client logged in as alice (invitation accepted)."""
    client = new_client(app)
    assert accept_invitation(client, study[0].invitations["alice"]).status_code == 200
    return client


@pytest.fixture
def admin_client(app):
    client = new_client(app)
    assert login_admin(client).status_code == 200
    return client
