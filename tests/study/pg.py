"""Start and stop a throw-away PostgreSQL server (initdb + pg_ctl, as the postgres user when root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path


def postgres_missing() -> str | None:
    """Why no test server can be started here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return (
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql; .ci/run does)"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser` to start PostgreSQL as the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server():
    """Yields `postgresql+psycopg://postgres@127.0.0.1:PORT` of a fresh server in a temp dir; removes it after."""
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="synthmed-pg-"))
    datadir = workdir / "data"
    if as_root:
        shutil.chown(workdir, user="postgres")
    port = _free_port()
    subprocess.run(
        prefix + [str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -h 127.0.0.1 -k {workdir} -c fsync=off -c max_connections=200"
    subprocess.run(
        prefix
        + [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(workdir / "log.txt"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            prefix + [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"
