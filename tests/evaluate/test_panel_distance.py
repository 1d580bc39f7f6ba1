"""Fidelity panels: degraded real images (outside any search space the metric was fitted to) read not good,
clean held-out real images read good, a missing class and a repeated handful read poor."""

from __future__ import annotations

import numpy as np
import pytest
from _evaluate_helpers import smooth_images

from synthmed.evaluate import planted
from synthmed.evaluate.lowlevel import PANELS, panel_features
from synthmed.evaluate.panel_distance import (
    PanelDistanceConfig,
    compute_panel_distances,
    fidelity_panels,
    panel_summary_status,
    worst_panel,
)

CONFIG = PanelDistanceConfig(bootstrap_samples=10, draws=6, seed=0)


def _status(train, train_labels, held, held_labels, synth, synth_labels, classes=("a", "b")):
    panels = fidelity_panels(train_pixels=train, heldout_pixels=held, synthetic_pixels=synth)
    result = compute_panel_distances(
        panels=panels,
        train_labels=train_labels,
        heldout_labels=held_labels,
        synthetic_labels=synth_labels,
        classes=list(classes),
        config=CONFIG,
    )
    return panel_summary_status(result), result


@pytest.fixture(scope="module")
def sets():
    images = smooth_images(900, size_px=32, seed=11, shared=0.5)
    # Add a fine-grained texture so that blur and resampling have something to remove, as in radiographs.
    texture = np.random.default_rng(12).normal(0, 6, images.shape)
    images = np.clip(images + texture, 0, 255).astype(np.uint8)
    labels = np.arange(len(images)) % 2
    return {
        "train": (images[:500], labels[:500]),
        "held": (images[500:700], labels[500:700]),
        "cand": (images[700:], labels[700:]),
    }


def test_clean_heldout_reads_good(sets):
    status, result = _status(*sets["train"], *sets["held"], *sets["cand"])
    assert status == "good", {n: p["overall"].get("ratio_to_floor") for n, p in result["panels"].items()}


@pytest.mark.parametrize(
    "name", ["blur 1 px", "noise 10", "contrast 0.8", "gamma 1.25", "jpeg q30", "down-up 2x", "16 grey levels"]
)
def test_middle_strength_degradations_do_not_read_good(sets, name):
    _family, _strength, degrade = planted.DEGRADATION_LADDER[name]
    pixels, labels = sets["cand"]
    status, result = _status(*sets["train"], *sets["held"], degrade(pixels, np.random.default_rng(0)), labels)
    assert status != "good", (name, {n: p["overall"].get("ratio_to_floor") for n, p in result["panels"].items()})
    assert worst_panel(result)[0] in PANELS


def test_missing_class_and_repeated_handful_read_poor(sets):
    pixels, labels = sets["cand"]
    status, result = _status(*sets["train"], *sets["held"], pixels[labels == 0], labels[labels == 0])
    assert status == "poor" and result["panels"]["intensity"]["overall"]["classes_missing"] == ["b"]
    repeated = np.concatenate([np.resize(np.flatnonzero(labels == c)[:3], int((labels == c).sum())) for c in (0, 1)])
    status, _ = _status(*sets["train"], *sets["held"], pixels[repeated], labels[repeated])
    assert status == "poor"


def test_panels_react_to_what_they_describe():
    images = smooth_images(64, size_px=32, seed=1)
    base = panel_features(images)
    assert set(base) == set(PANELS)
    noisy = panel_features(planted.add_noise(images, 20, np.random.default_rng(0)))
    quantised = panel_features(planted.quantise(images, 16))
    low_contrast = panel_features(planted.contrast(images, 0.5))
    # Relative high-frequency power (last spectrum band) rises with noise; grey levels used fall when quantised.
    assert noisy["texture"][:, 7].mean() > base["texture"][:, 7].mean() + 1.0
    assert quantised["texture"][:, -2].mean() < 0.5 * base["texture"][:, -2].mean()  # share of grey levels used
    assert low_contrast["intensity"][:, -3].mean() < 0.6 * base["intensity"][:, -3].mean()  # std of grey levels


def test_rgb_noise_reads_poor_against_real_smears(shared_data):
    """Pure coloured noise (an undertrained RGB generator) against real blood smears."""
    from PIL import Image

    files = sorted((shared_data / "all_blood_smear" / "all").glob("*/*"))[::3][:600]
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32))).transpose(2, 0, 1) for f in files])
    images = images[np.random.default_rng(1).permutation(len(images))]  # the four classes mixed in every part
    labels = np.zeros(len(images), dtype=int)
    noise = np.random.default_rng(0).integers(0, 256, (150, 3, 32, 32), dtype=np.uint8)
    status, _ = _status(
        images[:300], labels[:300], images[300:450], labels[300:450], noise, labels[:150], classes=("all",)
    )
    assert status == "poor"
    status, result = _status(
        images[:300], labels[:300], images[300:450], labels[300:450], images[450:], labels[450:], classes=("all",)
    )
    assert status == "good", {n: p["overall"].get("ratio_to_floor") for n, p in result["panels"].items()}
