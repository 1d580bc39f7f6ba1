"""Copy search: copies shifted near the search's reach, of near-symmetric images and under random combined
transforms (drawn off the search grid), are found unflipped and at the right image; unrelated images stay below.
Noisy copies score as copies (the noise is discounted), while noisy or pure-noise non-copies do not gain."""

from __future__ import annotations

import numpy as np
import pytest
from _evaluate_helpers import smooth_images

from synthmed.evaluate.copy_fit import noise_sigma_grey
from synthmed.evaluate.copy_search import CopySearchConfig, build_copy_index, coarse_for, search_copies
from synthmed.evaluate.memorisation import calibrate_threshold
from synthmed.evaluate.planted import add_noise, affine, random_copy_transforms


def _near_symmetric(count: int, *, seed: int) -> np.ndarray:
    """Images that are nearly their own mirror (as brain MRI slices are): the mirror must not pass for the image."""
    images = smooth_images(count, size_px=32, seed=seed, shared=0.5).astype(np.float32)
    mirrored = 0.85 * (images + images[..., ::-1]) / 2 + 0.15 * images
    return np.clip(np.rint(mirrored), 0, 255).astype(np.uint8)


def test_small_images_get_the_small_coarse_stage_and_larger_ones_keep_theirs():
    config = CopySearchConfig()
    assert coarse_for(config, 32).coarse_size_px < config.coarse_size_px
    assert coarse_for(config, 64) == config
    assert coarse_for(CopySearchConfig(small_image_max_px=0), 32).coarse_size_px == config.coarse_size_px


# small_image_max_px=0: the 32 px images go through the coarse stage that 64 px images get.
@pytest.mark.parametrize("small_image_max_px", [32, 0])
def test_large_random_shifts_of_near_symmetric_images_are_found_unflipped(small_image_max_px: int):
    train = _near_symmetric(150, seed=11)
    rng = np.random.default_rng(11)
    n = 12
    source = rng.choice(len(train), n, replace=False)
    # Shifts up to 4 px at 32 px (8 px at 64), continuous, with a small continuous rotation: off the search grid.
    shift = rng.uniform(2.5, 4.0, (n, 2)) * rng.choice([-1, 1], (n, 2))
    copies = affine(
        train[source], angle_deg=rng.uniform(-3, 3, n), scale=np.ones(n), shift_px=shift, flip=np.zeros(n, bool)
    )
    config = CopySearchConfig(small_image_max_px=small_image_max_px)
    found = search_copies(copies, build_copy_index(train, config=config), config=config)
    np.testing.assert_array_equal(found["train_index"], source)
    assert not found["flipped"].any(), "a near-symmetric image's mirror took the place of the image itself"
    assert found["similarity"].min() > 0.98
    np.testing.assert_allclose(found["shift_dx"], shift[:, 1] * config.fine_size_px / 32, atol=0.5)
    unrelated = search_copies(_near_symmetric(12, seed=12), build_copy_index(train, config=config), config=config)
    assert unrelated["similarity"].max() < found["similarity"].min()


def test_random_combined_transforms_are_found_and_held_out_images_stay_below():
    images = smooth_images(220, size_px=32, seed=13, shared=0.6)
    train, heldout = images[:180], images[180:]
    rng = np.random.default_rng(13)
    source = rng.choice(len(train), 12, replace=False)
    copies = random_copy_transforms(train[source], rng, family="combined")
    config = CopySearchConfig()
    index = build_copy_index(train, config=config)
    found = search_copies(copies, index, config=config)
    clean = search_copies(heldout, index, config=config)
    assert (found["train_index"] == source).mean() >= 11 / 12
    assert np.quantile(found["similarity"], 0.1) > clean["similarity"].max()


def test_noise_estimate_follows_added_noise_and_reads_low_on_smooth_images():
    images = smooth_images(40, size_px=32, seed=21)
    rng = np.random.default_rng(21)
    assert noise_sigma_grey(images).max() < 2.0
    for sigma in (4.0, 10.0):
        noisy = add_noise(images, sigma, rng)
        np.testing.assert_allclose(np.median(noise_sigma_grey(noisy)), sigma, rtol=0.2)


def test_noisy_copies_score_as_copies_while_noisy_and_pure_noise_images_do_not():
    images = smooth_images(200, size_px=32, seed=22, shared=0.85)
    train, heldout = images[:170], images[170:]
    rng = np.random.default_rng(22)
    source = rng.choice(len(train), 12, replace=False)
    # Noise drawn continuously, partly beyond the planted range (3-12 grey levels): the search has no noise grid.
    copies = np.concatenate([add_noise(train[i : i + 1], s, rng) for i, s in zip(source, rng.uniform(8, 16, 12))])
    config, plain = CopySearchConfig(), CopySearchConfig(max_noise_fraction=0.0)
    index = build_copy_index(train, config=config)
    found, uncorrected = search_copies(copies, index, config=config), search_copies(copies, index, config=plain)
    clean = search_copies(heldout, index, config=config)
    noisy_heldout = search_copies(add_noise(heldout, 12, rng), index, config=config)
    pure_noise = search_copies(rng.integers(0, 256, heldout.shape, dtype=np.uint8), index, config=config)
    np.testing.assert_array_equal(found["train_index"], source)
    threshold = calibrate_threshold(clean["similarity"], quantile=0.99, margin=0.25)  # as `synthmed evaluate` sets it
    flagged, flagged_uncorrected = (
        (found["similarity"] >= threshold).sum(),
        (uncorrected["similarity"] >= threshold).sum(),
    )
    assert flagged_uncorrected <= 8, "the noise was too weak to test anything"
    assert flagged >= 10 and flagged >= flagged_uncorrected + 3
    assert (found["noise_fraction"] > 0.02).all() and (found["noise_fraction"] <= config.max_noise_fraction).all()
    # Not inflated for images that are not copies: noised held-out images keep about their clean similarity (the
    # noise the search fits is not credited to the match), so a noisy generator's output is not called a copy.
    assert abs(np.mean(noisy_heldout["similarity"]) - np.mean(clean["similarity"])) < 0.01
    assert (noisy_heldout["similarity"] >= threshold).sum() <= 1
    assert pure_noise["similarity"].max() < clean["similarity"].min()


def test_copies_shifted_with_a_black_border_are_found():
    # Image editors fill what a shift uncovers with black; the search warps with reflected borders by default.
    images = smooth_images(200, size_px=32, seed=23, shared=0.85)
    train, heldout = images[:170], images[170:]
    rng = np.random.default_rng(23)
    source = rng.choice(len(train), 12, replace=False)
    shift = rng.uniform(2.5, 4.0, (12, 2)) * rng.choice([-1, 1], (12, 2))  # 5-8 px at 64 px
    copies = affine(
        train[source],
        angle_deg=np.zeros(12),
        scale=np.ones(12),
        shift_px=shift,
        flip=np.zeros(12, bool),
        border="zeros",
    )
    assert (copies[:, 0, :, :2] == 0).any(), "no black border was planted"
    config = CopySearchConfig()
    index = build_copy_index(train, config=config)
    found, clean = search_copies(copies, index, config=config), search_copies(heldout, index, config=config)
    threshold = calibrate_threshold(clean["similarity"], quantile=0.99, margin=0.25)
    assert (found["train_index"] == source).mean() >= 11 / 12
    assert (found["similarity"] >= threshold).sum() >= 11
