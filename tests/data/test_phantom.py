"""The chest phantom: determinism per seed, radiological properties of each condition, the dataset writer."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthmed.data.manifest import read_dataset_info, read_manifest
from synthmed.data.phantom import CONDITIONS, prepare_phantom, sample_phantom_params, write_phantom_dataset
from synthmed.data.phantom_render import measured_ctr, render_masks, render_phantom


def test_same_seed_same_image_other_seed_other_image():
    a = render_phantom(sample_phantom_params("normal", np.random.default_rng(3)), size_px=64)
    b = render_phantom(sample_phantom_params("normal", np.random.default_rng(3)), size_px=64)
    c = render_phantom(sample_phantom_params("normal", np.random.default_rng(4)), size_px=64)
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 2


def test_anatomy_is_where_a_radiograph_has_it():
    params = replace(sample_phantom_params("normal", np.random.default_rng(0)), noise_std=0.0, rotation_deg=0.0)
    image = render_phantom(params, size_px=128).astype(float)
    masks = render_masks(params, size_px=128)
    assert image[:4, :4].mean() < 10  # air outside the body is black
    assert image[masks["lungs"]].mean() + 40 < image[masks["heart"]].mean()  # lungs dark, heart bright
    lung_cols = np.flatnonzero(masks["lungs"].any(axis=0))
    assert lung_cols.min() < 40 and lung_cols.max() > 88  # two lungs either side of the midline
    assert not masks["lungs"][:, 62:66].any()  # mediastinum between them


@pytest.mark.parametrize("seed", range(4))
def test_cardiothoracic_ratio_follows_the_condition(seed):
    rng = np.random.default_rng(seed)
    normal, big = sample_phantom_params("normal", rng), sample_phantom_params("cardiomegaly", rng)
    assert measured_ctr(normal, size_px=256) < 0.5 < measured_ctr(big, size_px=256)
    assert abs(measured_ctr(big, size_px=256) - big.ctr) < 0.03


def _costophrenic_region(masks: dict, side: str) -> np.ndarray:
    """Lowest fifth of one lung's rows, lateral half (patient's right = image left)."""
    lungs = masks["lungs"].copy()
    half = lungs.shape[1] // 2
    if side == "right":
        lungs[:, half:] = False
    else:
        lungs[:, :half] = False
    rows, cols = np.nonzero(lungs)
    low = rows >= rows.max() - (rows.max() - rows.min()) // 5
    lateral = cols <= np.percentile(cols, 50) if side == "right" else cols >= np.percentile(cols, 50)
    region = np.zeros_like(lungs)
    region[rows[low & lateral], cols[low & lateral]] = True
    return region


@pytest.mark.parametrize("side", ["right", "left"])
def test_effusion_whitens_the_costophrenic_angle_on_its_side(side):
    base = replace(sample_phantom_params("normal", np.random.default_rng(5)), noise_std=0.0, rotation_deg=0.0)
    wet = replace(base, condition="pleural_effusion", effusion_side=side, effusion_height=0.15, effusion_meniscus=0.1)
    masks = render_masks(base, size_px=128)
    dry_image, wet_image = (
        render_phantom(base, size_px=128).astype(float),
        render_phantom(wet, size_px=128).astype(float),
    )
    other = "left" if side == "right" else "right"
    angle, opposite = _costophrenic_region(masks, side), _costophrenic_region(masks, other)
    assert wet_image[angle].mean() > dry_image[angle].mean() + 25
    assert abs(wet_image[opposite].mean() - dry_image[opposite].mean()) < 3
    wet_masks = render_masks(wet, size_px=128)
    rows = np.flatnonzero(wet_masks["effusion"].any(axis=1))
    lateral_top = np.nonzero(wet_masks["effusion"])
    assert rows.size and lateral_top[0].size  # a fluid region exists
    # Meniscus: the fluid reaches higher at the lateral wall than near the mediastinum.
    cols = lateral_top[1]
    tops = {c: lateral_top[0][cols == c].min() for c in np.unique(cols)}
    lateral_col = min(tops) if side == "right" else max(tops)
    medial_col = max(tops) if side == "right" else min(tops)
    assert tops[lateral_col] < tops[medial_col]


def test_consolidation_is_a_patchy_opacity_in_its_lobe():
    params = sample_phantom_params("consolidation", np.random.default_rng(7))
    params = replace(params, noise_std=0.0)
    clear = replace(params, condition="normal", consolidation_lobe="none")
    masks = render_masks(params, size_px=128)
    diff = render_phantom(params, size_px=128).astype(float) - render_phantom(clear, size_px=128)
    assert masks["consolidation"].sum() > 30 and diff[masks["consolidation"]].mean() > 25
    on_side = (np.nonzero(masks["consolidation"])[1] < 64) == params.consolidation_lobe.startswith("right")
    assert on_side.all()
    assert diff[masks["consolidation"]].std() > 5  # patchy, not a flat disc


def test_unknown_condition_is_refused():
    with pytest.raises(ValueError, match="pleural_effusion"):
        sample_phantom_params("pneumothorax", np.random.default_rng(0))


def test_dataset_writer_and_prepare(tmp_path):
    raw = write_phantom_dataset(tmp_path / "raw", n_per_class=6, size_px=64, seed=1)
    meta = pd.read_csv(raw / "metadata.csv")
    assert len(meta) == 24 and set(meta["label"]) == set(CONDITIONS)
    assert {"file", "patient_id", "age_years", "sex", "view", "ctr", "effusion_side", "consolidation_lobe"} <= set(meta)
    assert (meta.groupby("patient_id").size() > 1).any()  # some patients have several images
    assert (meta.loc[meta["label"] == "cardiomegaly", "ctr"] > 0.5).all()
    assert (meta.loc[meta["label"] == "normal", "ctr"] < 0.5).all()
    with Image.open(raw / meta["file"][0]) as img:
        assert img.size == (64, 64) and img.mode == "L"
    again = write_phantom_dataset(tmp_path / "again", n_per_class=6, size_px=64, seed=1)
    assert (again / meta["file"][3]).read_bytes() == (raw / meta["file"][3]).read_bytes()

    out = prepare_phantom(tmp_path / "prepared", n_per_class=6, size_px=32, seed=1, render_size_px=64)
    frame = read_manifest(out)
    info = read_dataset_info(out)
    assert info.classes == sorted(CONDITIONS) and info.image_size_px == 32 and info.channels == 1
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all() and len(frame) == 24
    assert "phantom" in info.source
