"""Usefulness verdict: synthetic images copied from the real test set invalidate the usefulness verdict."""

from __future__ import annotations

import numpy as np
from _evaluate_helpers import smooth_images

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.planted import blur
from synthmed.evaluate.tstr_verdict import flag_test_contamination


def _arrays(pixels: np.ndarray, prefix: str) -> ImageArrays:
    return ImageArrays(pixels, np.arange(len(pixels)) % 2, ["a", "b"], [f"{prefix}{i}" for i in range(len(pixels))])


def _section() -> dict:
    return {"status": "good", "verdict": "A classifier trained only on synthetic images reaches 131% of real."}


def test_synthetic_images_copied_from_the_test_set_make_usefulness_invalid():
    images = smooth_images(60, size_px=32, seed=3, shared=0.5)
    test, other = images[:20], images[20:]
    # Copies of test images, mirrored or slightly blurred (the card's rule covers both), among unrelated images.
    leaked = np.concatenate([test[:3, :, :, ::-1], blur(test[3:6], 0.5)])
    synthetic = _arrays(np.concatenate([other[:14], leaked]), "syn")
    section = flag_test_contamination(_section(), synthetic=synthetic, test=_arrays(test, "test"))
    found = section["test_contamination"]
    assert found["n_near_duplicates_of_test"] == 6
    assert {p["test_id"] for p in found["pairs"]} == {f"test{i}" for i in range(6)}
    assert section["status"] == "poor" and section["verdict"].startswith("Not a valid test: 6 of 20")
    clean = flag_test_contamination(_section(), synthetic=_arrays(other, "syn"), test=_arrays(test, "test"))
    assert clean["status"] == "good" and clean["test_contamination"]["n_near_duplicates_of_test"] == 0
