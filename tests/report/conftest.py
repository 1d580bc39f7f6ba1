"""Fixtures for the report tests: an evaluation folder like `synthmed evaluate` writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EVIL = "<script>alert(1)</script>"


def _make_eval_dir(root: Path, dataset: Path) -> Path:
    """An evaluation folder as `synthmed evaluate` writes it: metrics.json plus section figures."""
    eval_dir = root / "run" / "eval"
    (eval_dir / "usefulness").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(
        eval_dir / "usefulness" / "tstr.png"
    )
    ci = {"value": 3.2, "ci95": [2.9, 3.5]}
    metrics = {
        "inputs": {
            "real_dataset": str(dataset),
            "synthetic_set": str(dataset),
            "n_synthetic": 24,
            "classes": ["left", "right"],
        },
        "fidelity": {
            "verdict": "Close to real.",
            "overall": {"synthetic": {"fid": ci}, "real_floor": {"fid": ci}, "fid_ratio_to_floor": 1.0},
        },
        "memorisation": {
            "verdict": "2 copies found.",
            "status": "poor",
            "top_pairs": [{"synthetic_id": EVIL, "train_id": "t1", "pixel_correlation": 0.99}],
        },
        "usefulness": {
            "verdict": "Useful.",
            "status": "good",
            "figures": [
                {"title": f"Scores {EVIL}", "path": "usefulness/tstr.png"},
                {"title": "Gone", "path": "usefulness/missing.png"},
                {"title": "Outside", "path": "../../secret.png"},
            ],
        },
        "brand_new_section": {"alpha": 1.5, "nested": {"beta": [1, 2, 3]}},
        "timings_s": {"fidelity": 1.25},
    }
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    return eval_dir


@pytest.fixture
def make_eval_dir() -> Callable[[Path, Path], Path]:
    """`make_eval_dir(root, dataset)` -> EVAL_DIR with metrics.json (naming `dataset` as inputs) and a figure."""
    return _make_eval_dir
