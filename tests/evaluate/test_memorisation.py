"""Memorisation: planted (flipped / shifted / JPEG / noised) training copies are flagged, held-out real images are not."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.arrays import load_image_arrays
from synthmed.evaluate.memorisation import (MemorisationConfig, build_pixel_index, calibrate_threshold, find_copies,
                                            nearest_by_features, nearest_by_pixels)
from _evaluate_helpers import image_folder_dataset, plant_copies, smooth_images


def _check(train: np.ndarray, heldout: np.ndarray, planted_from: np.ndarray, *, seed: int = 0,
           features: tuple | None = None) -> dict:
    planted, kinds = plant_copies(train, planted_from, seed=seed)
    synthetic = np.concatenate([planted, heldout[len(heldout) // 2:]])
    calibration = heldout[:len(heldout) // 2]
    result = find_copies(train_pixels=train, heldout_pixels=calibration, synthetic_pixels=synthetic,
                         train_features=None, heldout_features=None, synthetic_features=None,
                         config=MemorisationConfig(), rng=np.random.default_rng(seed))
    n = len(planted)
    flagged = result["flagged"]
    missed = [kind for kind, hit in zip(kinds, flagged[:n]) if not hit]
    assert not missed, f"planted copies not flagged: {missed}, similarity {result['pixel']['nearest']['similarity'][:n]}"
    np.testing.assert_array_equal(result["pixel"]["nearest"]["train_index"][:n], planted_from)
    assert flagged[n:].mean() <= 0.02, "ordinary held-out real images must not be flagged as copies"
    return result


def test_planted_copies_flagged_and_heldout_not_on_synthetic_images():
    images = smooth_images(300, size_px=48, seed=0, shared=0.7)
    train, heldout = images[:200], images[200:]
    result = _check(train, heldout, np.arange(0, 40, 2))
    flipped = result["pixel"]["nearest"]["flipped"][:20]
    assert flipped[0::4].all() and not flipped[1::4].any()  # the flipped copies matched the flipped training image


def test_planted_copies_flagged_and_heldout_not_on_real_chest_xrays(shared_data, tmp_path):
    root = image_folder_dataset(tmp_path / "kermany", shared_data / "cxr_kermany_224",
                                per_split={"train": 1500, "test": 300}, image_size_px=64)
    train = load_image_arrays(root, split="train", size_px=64, channels=1).pixels
    heldout = load_image_arrays(root, split="test", size_px=64, channels=1).pixels
    _check(train, heldout, np.random.default_rng(1).choice(len(train), 24, replace=False), seed=1)


def test_exact_self_match_found_and_excluded_on_request():
    train = smooth_images(30, size_px=32, seed=4)
    config = MemorisationConfig()
    index = build_pixel_index(train, config=config)
    same = nearest_by_pixels(train, index, config=config)
    np.testing.assert_array_equal(same["train_index"], np.arange(30))
    assert same["similarity"].min() > 0.999
    others = nearest_by_pixels(train, index, config=config, exclude_self=True)
    assert (others["train_index"] != np.arange(30)).all() and others["similarity"].max() < 0.99


def test_feature_cosine_nearest_and_calibration_without_heldout():
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(50, 8))
    near = nearest_by_features(feats[:5] * 3.0, feats)  # cosine ignores scale
    np.testing.assert_array_equal(near["train_index"], np.arange(5))
    assert near["similarity"] == pytest.approx(np.ones(5))
    train = smooth_images(60, size_px=32, seed=6)
    result = find_copies(train_pixels=train, heldout_pixels=None, synthetic_pixels=train[:4], train_features=rng.normal(size=(60, 8)),
                         heldout_features=None, synthetic_features=rng.normal(size=(4, 8)),
                         config=MemorisationConfig(), rng=rng)
    assert result["calibration"].startswith("train vs other train")
    assert result["flagged"].all()  # exact training images are copies by the pixel test
    assert "feature" in result and -1 <= result["feature"]["threshold"] <= 1


def test_threshold_calibration_and_config_validation():
    assert calibrate_threshold(np.linspace(0, 0.9, 101), quantile=1.0, margin=0.5) == pytest.approx(0.95)
    with pytest.raises(ValueError, match="margin"):
        MemorisationConfig(margin=1.5)
    with pytest.raises(ValueError, match="at least 2"):
        find_copies(train_pixels=smooth_images(1), heldout_pixels=None, synthetic_pixels=smooth_images(2),
                    train_features=None, heldout_features=None, synthetic_features=None,
                    config=MemorisationConfig(), rng=np.random.default_rng(0))
