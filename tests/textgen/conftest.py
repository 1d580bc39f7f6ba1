"""Fixtures for text-to-image tests: one torch thread (tiny models on a shared 2-core CPU), a tiny SD folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_sd import make_tiny_sd


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run 30x faster on one thread when other processes share the 2 cores (no OpenMP spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd_session(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion folder (16 px images), built once per session."""
    torch.set_num_threads(1)
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd")


@pytest.fixture
def tiny_sd(tiny_sd_session, tmp_path) -> Path:
    """A private copy of the tiny SD folder (tests may break it)."""
    return Path(shutil.copytree(tiny_sd_session, tmp_path / "sd"))
