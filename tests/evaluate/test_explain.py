"""Explanations: Grad-CAM finds the blob that defines the class; LIME runs capped and batched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.explain import constant_maps, explain, gradcam_maps, lime_maps, select_balanced
from synthmed.evaluate.tstr import TSTRConfig, fit_classifier

SIZE_PX = 32


def _blob_set(count: int, seed: int) -> tuple[ImageArrays, np.ndarray]:
    """Class 'blob' has one bright blob at a random place, class 'empty' only noise; returns the centres."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE_PX, 0:SIZE_PX]
    pixels, labels, centres = [], [], []
    for index in range(count):
        label = index % 2
        cy, cx = rng.uniform(SIZE_PX * 0.2, SIZE_PX * 0.8, 2)
        image = 40 + rng.normal(0, 8, (SIZE_PX, SIZE_PX))
        if label == 1:
            image += 180 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (SIZE_PX / 10) ** 2))
        pixels.append(np.clip(image, 0, 255).astype(np.uint8)[None])
        labels.append(label)
        centres.append((cy, cx))
    arrays = ImageArrays(np.stack(pixels), np.array(labels), ["empty", "blob"], [f"i{i}" for i in range(count)])
    return arrays, np.array(centres)


@pytest.fixture(scope="module")
def blob_model():
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        train, _ = _blob_set(64, seed=0)
        config = TSTRConfig(epochs=10, batch_size=16, lr=3e-3, image_size_px=SIZE_PX, small_cnn_width=16)
        return fit_classifier(train, None, arch="small_cnn", config=config, seed=0)


def test_gradcam_is_strongest_near_the_blob(blob_model) -> None:
    test, centres = _blob_set(20, seed=1)
    blobs = test.labels == 1
    maps = gradcam_maps(blob_model, test.pixels[blobs], test.labels[blobs])
    assert maps.shape == (int(blobs.sum()), SIZE_PX, SIZE_PX)
    distances = []
    for cam, (cy, cx) in zip(maps, centres[blobs]):
        py, px = np.unravel_index(cam.argmax(), cam.shape)
        distances.append(np.hypot(py - cy, px - cx))
    # The blob is ~3 px wide in a 32 px image; a random peak would be ~12 px away on average.
    assert np.median(distances) <= 6


def test_lime_runs_with_few_samples_and_favours_the_blob(blob_model) -> None:
    test, centres = _blob_set(4, seed=2)
    blobs = test.labels == 1
    maps = lime_maps(blob_model, test.pixels[blobs], test.labels[blobs], num_samples=60, batch_size=32)
    assert maps.shape == (int(blobs.sum()), SIZE_PX, SIZE_PX)
    for weights, (cy, cx) in zip(maps, centres[blobs]):
        assert weights[int(round(cy)), int(round(cx))] >= np.median(weights)


def test_explain_writes_side_by_side_figures_and_a_json_section(blob_model, tmp_path: Path) -> None:
    real, _ = _blob_set(10, seed=3)
    synthetic = ImageArrays(real.pixels.copy(), real.labels, real.classes, [f"s{i}" for i in real.ids])
    out_dir = tmp_path / "eval" / "explanations"
    section = explain(
        model=blob_model, real=real, synthetic=synthetic, out_dir=out_dir, max_images_per_set=4, lime_num_samples=40
    )
    assert section["images_per_set"] == {"real": 4, "synthetic": 4}
    assert [f["path"] for f in section["figures"]] == ["explanations/gradcam.png", "explanations/lime.png"]
    for figure in section["figures"]:
        assert (tmp_path / "eval" / figure["path"]).stat().st_size > 5000
    # Identical real and synthetic images: the classifier looks at exactly the same places.
    assert section["gradcam"]["map_correlation_per_class"]["blob"] == pytest.approx(1.0, abs=1e-4)
    assert section["gradcam"]["constant_maps"] == {"real": 0, "synthetic": 0}
    assert not section["gradcam"]["explainer_failed"] and not section["lime"]["explainer_failed"]
    assert section["status"] == "good" and "same regions" in section["verdict"] and "failed" not in section["verdict"]
    assert json.loads(json.dumps(section)) == section


def test_synthetic_trained_classifier_is_explained_beside_the_real_trained_one(blob_model, tmp_path: Path) -> None:
    real, _ = _blob_set(8, seed=6)
    synthetic, _ = _blob_set(8, seed=7)
    with torch.random.fork_rng():
        train, _ = _blob_set(64, seed=8)
        config = TSTRConfig(epochs=10, batch_size=16, lr=3e-3, image_size_px=SIZE_PX, small_cnn_width=16)
        other = fit_classifier(train, None, arch="small_cnn", config=config, seed=1)
    out_dir = tmp_path / "eval" / "explanations"
    single = explain(
        model=blob_model,
        real=real,
        synthetic=synthetic,
        out_dir=tmp_path / "single",
        methods=("gradcam",),
        max_images_per_set=4,
    )
    section = explain(
        model=blob_model,
        synthetic_model=other,
        real=real,
        synthetic=synthetic,
        out_dir=out_dir,
        methods=("gradcam",),
        max_images_per_set=4,
        rests_on="small_cnn test classifiers",
    )
    assert set(section["classifiers"]) == {"real-trained", "synthetic-trained"}
    theirs = section["gradcam"]["synthetic_trained"]
    # Both learned the blob: on the blob class their maps agree; the real-trained numbers are unchanged by adding it.
    assert theirs["agreement_with_real_trained_on_real_images"]["blob"] >= 0.5
    assert section["gradcam"]["map_correlation_per_class"] == single["gradcam"]["map_correlation_per_class"]
    assert "synthetic-trained" in section["verdict"] and section["verdict"].endswith("small_cnn test classifiers")
    # Side by side: the figure has an extra column per set, so it is wider than the single-classifier one.
    from PIL import Image

    wide = Image.open(tmp_path / "eval" / section["figures"][0]["path"]).size[0]
    narrow = Image.open(tmp_path / "single" / "gradcam.png").size[0]
    assert wide > narrow * 1.3


def test_constant_gradcam_maps_are_an_explainer_failure_not_a_missing_class(tmp_path: Path) -> None:
    # ResNet-50 at 32 px: its last feature map is 1x1, so every Grad-CAM map is flat (the real case).
    train, _ = _blob_set(16, seed=9)
    with torch.random.fork_rng():
        model = fit_classifier(
            train,
            None,
            arch="resnet50",
            seed=0,
            config=TSTRConfig(epochs=1, min_steps=2, batch_size=8, image_size_px=SIZE_PX),
        )
    maps = gradcam_maps(model, train.pixels[:4], train.labels[:4])
    assert constant_maps(maps).all()
    section = explain(
        model=model,
        real=train,
        synthetic=train,
        out_dir=tmp_path / "explanations",
        methods=("gradcam",),
        max_images_per_set=4,
    )
    assert section["gradcam"]["explainer_failed"] and section["gradcam"]["constant_maps"] == {"real": 4, "synthetic": 4}
    assert section["gradcam_feature_map_px"]["real-trained"] == [1, 1]
    assert section["status"] == "info"
    assert "Grad-CAM maps are constant for this classifier at this resolution" in section["verdict"]
    assert "the explainer failed, not the images" in section["verdict"] and "1x1" in section["verdict"]
    assert "missing" not in section["verdict"]
    # This ResNet-50 is also at chance (2 steps from scratch): with LIME working, the verdict says that instead
    # of reading LIME maps of a classifier that learned nothing, and still reports the Grad-CAM failure.
    both = explain(
        model=model, real=train, synthetic=train, out_dir=tmp_path / "both", max_images_per_set=2, lime_num_samples=20
    )
    assert both["real_balanced_accuracy"]["real-trained"] <= 0.6 and both["status"] == "info"
    assert "barely better than chance" in both["verdict"] and "the explainer failed, not the images" in both["verdict"]


def test_learned_classifier_with_flat_gradcam_is_judged_on_lime(tmp_path: Path) -> None:
    # small_cnn fed 8 px images: three poolings leave a 1x1 feature map, so Grad-CAM is flat, yet it learns the blob.
    train, _ = _blob_set(64, seed=11)
    with torch.random.fork_rng():
        config = TSTRConfig(epochs=10, batch_size=16, lr=3e-3, image_size_px=8, small_cnn_width=16)
        model = fit_classifier(train, None, arch="small_cnn", config=config, seed=0)
    real, _ = _blob_set(16, seed=12)
    section = explain(
        model=model,
        real=real,
        synthetic=real,
        out_dir=tmp_path / "explanations",
        max_images_per_set=4,
        lime_num_samples=40,
    )
    assert section["real_balanced_accuracy"]["real-trained"] >= 0.8
    assert section["gradcam"]["explainer_failed"] and not section["lime"]["explainer_failed"]
    assert section["status"] == "good" and "LIME map correlation 1.00" in section["verdict"]
    assert "Grad-CAM maps are constant" in section["verdict"] and "1x1" in section["verdict"]


def test_sets_without_a_shared_class_say_so_instead_of_judging(blob_model, tmp_path: Path) -> None:
    images, _ = _blob_set(8, seed=13)
    real, synthetic = images.subset(images.labels == 1), images.subset(images.labels == 0)
    section = explain(
        model=blob_model,
        real=real,
        synthetic=synthetic,
        out_dir=tmp_path / "explanations",
        methods=("gradcam",),
        max_images_per_set=2,
    )
    assert section["gradcam"]["map_correlation_per_class"] == {"empty": None, "blob": None}
    assert section["status"] == "info" and "could not be compared" in section["verdict"]


def test_constant_maps_flags_flat_and_non_finite_maps_only() -> None:
    rng = np.random.default_rng(0)
    maps = np.stack(
        [
            np.zeros((8, 8)),
            np.full((8, 8), 0.3),
            rng.random((8, 8)),
            np.full((8, 8), np.nan),
            np.pad(np.ones((1, 1)), ((0, 7), (0, 7))),
        ]
    ).astype(np.float32)
    assert constant_maps(maps).tolist() == [True, True, False, True, False]


def test_select_balanced_takes_classes_in_turn() -> None:
    arrays = ImageArrays(np.zeros((6, 1, 4, 4), np.uint8), np.array([0, 0, 0, 0, 1, 1]), ["a", "b"], list("abcdef"))
    assert select_balanced(arrays, 3).tolist() == [0, 1, 4]
    assert select_balanced(arrays, 10).tolist() == [0, 1, 2, 3, 4, 5]


def test_bad_arguments_are_refused(blob_model, tmp_path: Path) -> None:
    real, _ = _blob_set(4, seed=5)
    with pytest.raises(ValueError, match="Unknown explanation method"):
        explain(
            model=blob_model,
            real=real,
            synthetic=real,
            out_dir=tmp_path,
            methods=("shap",),
            max_images_per_set=2,
            lime_num_samples=10,
        )
    with pytest.raises(ValueError, match="at least 1"):
        explain(
            model=blob_model, real=real, synthetic=real, out_dir=tmp_path, max_images_per_set=0, lime_num_samples=10
        )
    with pytest.raises(ValueError, match="target layer"):
        gradcam_maps(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)), real.pixels[:, :, :4, :4], real.labels
        )
