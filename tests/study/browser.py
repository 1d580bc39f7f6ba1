"""Start `synthmed study serve` on a free loopback port and drive it with headless Debian chromium (Selenium)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why a browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} not found (apt-get install chromium chromium-driver; .ci/run does)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(
    study_dir: Path,
    *,
    port: int | None = None,
    log_path: Path | None = None,
    database_url: str | None = None,
    cpus: set[int] | None = None,
):
    """`synthmed study serve STUDY_DIR` in a subprocess (pinned to `cpus` if given); yields the base URL."""
    port = port or free_port()
    log = open(log_path or Path(tempfile.mkdtemp()) / "serve.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synthmed.cli",
            "study",
            "serve",
            str(study_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        + (["--database-url", database_url] if database_url else []),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if cpus:
        os.sched_setaffinity(process.pid, cpus)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/login", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the study server did not start; see {log.name}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def chromium(*, width: int = 1440, height: int = 900):
    """A headless chromium with a fresh profile; quits (and deletes the profile) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="synthmed-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
