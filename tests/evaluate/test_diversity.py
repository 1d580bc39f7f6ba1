"""MS-SSIM diversity: collapsed sets look alike, noise is not variety, settings fit every image size."""

from __future__ import annotations

import numpy as np
import pytest
from _evaluate_helpers import smooth_images

from synthmed.evaluate.diversity import (
    DiversityConfig,
    compute_diversity,
    diversity_status,
    diversity_verdict,
    msssim_settings,
    pairwise_msssim,
    random_pairs,
)


@pytest.mark.parametrize("size_px", [8, 16, 28, 64, 256])
def test_settings_fit_image_size(size_px):
    settings = msssim_settings(size_px)
    images = np.random.default_rng(0).integers(0, 255, (4, 1, size_px, size_px), dtype=np.uint8)
    values = pairwise_msssim(images, np.array([[0, 1], [2, 3], [1, 1]]), settings=settings)
    assert values.shape == (3,) and values[2] == pytest.approx(1.0, abs=1e-4)
    assert sum(settings["betas"]) == pytest.approx(1.0)


def test_collapsed_set_has_high_msssim_and_verdict_says_so():
    real = smooth_images(40, size_px=32, seed=1, shared=0.2)
    rng = np.random.default_rng(2)
    collapsed = np.clip(real[:1].astype(float) + rng.normal(0, 2, (40, 1, 32, 32)), 0, 255).astype(np.uint8)
    labels = np.zeros(40, dtype=int)
    result = compute_diversity(
        real_pixels=real,
        real_labels=labels,
        synthetic_pixels=collapsed,
        synthetic_labels=labels,
        classes=["only"],
        config=DiversityConfig(pairs_per_class=50),
    )
    synth, real_m = result["per_class"]["only"]["synthetic"]["mean"], result["per_class"]["only"]["real"]["mean"]
    assert synth > 0.9 and synth > real_m + 0.3
    assert "mode collapse" in diversity_verdict(result)
    varied = compute_diversity(
        real_pixels=real,
        real_labels=labels,
        synthetic_pixels=smooth_images(40, size_px=32, seed=3, shared=0.2),
        synthetic_labels=labels,
        classes=["only"],
        config=DiversityConfig(pairs_per_class=50),
    )
    assert "mode collapse" not in diversity_verdict(varied) and diversity_status(varied) == "good"


def test_noise_is_not_diversity():
    """Pure noise varies more than patients do: it must not read as good variety."""
    real = smooth_images(40, size_px=32, seed=1, shared=0.2)
    noise = np.random.default_rng(4).integers(0, 256, (40, 1, 32, 32), dtype=np.uint8)
    labels = np.zeros(40, dtype=int)
    result = compute_diversity(
        real_pixels=real,
        real_labels=labels,
        synthetic_pixels=noise,
        synthetic_labels=labels,
        classes=["only"],
        config=DiversityConfig(pairs_per_class=50),
    )
    assert diversity_status(result) == "poor" and "noise" in diversity_verdict(result)


def test_random_pairs_never_pair_an_image_with_itself():
    pairs = random_pairs(5, 200, np.random.default_rng(0))
    assert (pairs[:, 0] != pairs[:, 1]).all() and pairs.max() < 5
    assert random_pairs(1, 10, np.random.default_rng(0)).shape == (0, 2)


def test_too_few_images_to_measure_reads_info_not_good():
    """A set with one image per class cannot show variety: the status says so instead of reading good."""
    real = smooth_images(6, size_px=32, seed=1, shared=0.2)
    labels = np.array([0, 1, 0, 1, 0, 1])
    result = compute_diversity(
        real_pixels=real,
        real_labels=labels,
        synthetic_pixels=real[:2],
        synthetic_labels=np.array([0, 1]),
        classes=["a", "b"],
        config=DiversityConfig(pairs_per_class=10),
    )
    assert diversity_verdict(result).startswith("Too few images") and diversity_status(result) == "info"
