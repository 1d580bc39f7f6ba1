"""Latent-diffusion test fixtures: a 32 px prepared dataset with age/sex metadata."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from synthmed.data.manifest import read_manifest, write_manifest

# The root conftest's dataset builder (both files are named conftest, so load it by path).
_spec = importlib.util.spec_from_file_location("synthmed_root_conftest", Path(__file__).parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
make_prepared_dataset = _root.make_prepared_dataset


@pytest.fixture
def dataset32(tmp_path) -> Path:
    """A 32 px 2-class prepared dataset (8 train / 2 test per class) with `sex` and `age_years` columns."""
    root = make_prepared_dataset(tmp_path / "ds", size_px=32, per_class={"train": 8, "test": 2})
    frame = read_manifest(root)
    frame["sex"] = np.where(frame.index % 2 == 0, "F", "M")
    frame["age_years"] = 20.0 + 3 * frame.index
    write_manifest(frame, root)
    return root


@pytest.fixture
def dataset_builder():
    """The root conftest's `make_prepared_dataset` (for tests that need other sizes or counts)."""
    return make_prepared_dataset
