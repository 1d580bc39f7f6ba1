"""Fixtures for text-to-image tests: a tiny Stable Diffusion folder built locally."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_sd import make_tiny_sd


@pytest.fixture(scope="session")
def tiny_sd_session(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion folder (16 px images), built once per session."""
    torch.set_num_threads(1)
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd")


@pytest.fixture
def tiny_sd(tiny_sd_session, tmp_path) -> Path:
    """A private copy of the tiny SD folder (tests may break it)."""
    return Path(shutil.copytree(tiny_sd_session, tmp_path / "sd"))
