"""Fixtures of the study tests: tiny real/synthetic image folders, a study on SQLite or PostgreSQL, a client."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from synthmed.study.app import create_app

from study.helpers import accept_invitation, login_admin, make_image_folders, make_study, new_client


# PostgreSQL: a real server started and stopped by the tests.

def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """URL prefix of a throw-away PostgreSQL server on a free loopback port (skips without the binaries)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql; .ci/run does)")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root without `runuser` to start PostgreSQL as the postgres user")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="synthmed-pg-"))
    datadir = workdir / "data"
    if as_root:
        shutil.chown(workdir, user="postgres")
    port = _free_port()
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres",
                             "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {workdir} -c fsync=off"
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l",
                             str(workdir / "log.txt"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """None (SQLite inside the study folder) or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return None
    import psycopg

    base = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture
def image_folders(tmp_path) -> tuple[Path, Path]:
    return make_image_folders(tmp_path / "sources")


@pytest.fixture
def study(tmp_path, image_folders, database_url):
    return make_study(tmp_path, image_folders, database_url)


@pytest.fixture
def app(study):
    return create_app(study[1])


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
