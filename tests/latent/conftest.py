"""Latent-diffusion test fixtures: a 32 px prepared dataset with age/sex metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthmed.data.manifest import read_manifest, write_manifest


@pytest.fixture
def dataset32(tmp_path, prepared_dataset_factory) -> Path:
    """A 32 px 2-class prepared dataset (8 train / 2 test per class) with `sex` and `age_years` columns."""
    root = prepared_dataset_factory(tmp_path / "ds", size_px=32, per_class={"train": 8, "test": 2})
    frame = read_manifest(root)
    frame["sex"] = np.where(frame.index % 2 == 0, "F", "M")
    frame["age_years"] = 20.0 + 3 * frame.index
    write_manifest(frame, root)
    return root
