"""Helpers of the study tests: tiny image folders, a study builder, and client actions (CSRF-aware)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from synthmed.study.blinding import StudySpec, build_study
from synthmed.study.settings import StudySettings

READERS = ("alice", "bob")
PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "organiser-secret-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_image_folders(root: Path, *, per_class: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """Real (JPEG, RGB, 40x48 px, EXIF) and synthetic (PNG, L, 32 px, text chunk) ImageFolder trees.

    The two sides differ on purpose in every way a file can (format, size, mode, metadata, smoothness),
    so the blinding has something to hide.
    """
    rng = np.random.default_rng(seed)
    real, synthetic = root / "real", root / "synthetic"
    for label in ("normal", "pneumonia"):
        (real / label).mkdir(parents=True)
        (synthetic / label).mkdir(parents=True)
        for k in range(per_class):
            noisy = rng.integers(0, 255, (48, 40), dtype=np.uint8)
            exif = Image.Exif()
            exif[0x010F] = "RealScanner Inc."  # Make
            Image.fromarray(noisy).convert("RGB").save(real / label / f"r{k}.jpg", quality=95, exif=exif)
            smooth = np.clip(np.add.outer(np.arange(32), np.arange(32)) * 4 + rng.normal(0, 2, (32, 32)), 0, 255)
            info = PngImagePlugin.PngInfo()
            info.add_text("generator", f"synthmed diffusion seed={k:d}")
            Image.fromarray(smooth.astype(np.uint8)).save(synthetic / label / f"s{k}.png", pnginfo=info)
    return real, synthetic


def make_study(tmp_path: Path, image_folders, database_url, **overrides):  # noqa: ANN001, ANN201
    """Build a 12-case study for READERS and return (CreatedStudy, StudySettings)."""
    real, synthetic = image_folders
    spec = StudySpec(
        **{
            "cases": 12,
            "synthetic_fraction": 0.5,
            "readers": list(READERS),
            "seed": 3,
            "conditions": ["effusion", "pneumonia"],
            "modality": "chest x-ray",
            "allow_unblinded": True,
            **overrides,
        }
    )  # the sides differ on purpose (see above)
    created = build_study(
        spec,
        real_dir=real,
        synthetic_dir=synthetic,
        study_dir=tmp_path / "study",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
    )
    settings = StudySettings(study_dir=created.study_dir, database_url=database_url, login_max_attempts=5)
    return created, settings


def new_client(app) -> TestClient:  # noqa: ANN001
    return TestClient(app, base_url="http://testserver", follow_redirects=True)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def accept_invitation(client: TestClient, token: str, password: str = PASSWORD):
    """Open the invitation, choose a password; returns the response after the redirect."""
    page = client.get(f"/invite/{token}")
    assert page.status_code == 200
    return client.post(
        f"/invite/{token}", data={"csrf_token": csrf_of(page.text), "password": password, "confirm": password}
    )


def login_reader(client: TestClient, name: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_of(page.text), "name": name, "password": password})


def login_admin(client: TestClient, password: str = ADMIN_PASSWORD):
    page = client.get("/admin/login")
    return client.post("/admin/login", data={"csrf_token": csrf_of(page.text), "name": "admin", "password": password})


def answer(client: TestClient, position: int, call: str = "real", confidence: int = 3, **extra):
    page = client.get(f"/reader/case/{position}")
    return client.post(
        f"/reader/case/{position}",
        data={"csrf_token": csrf_of(page.text), "call": call, "confidence": str(confidence), **extra},
    )
