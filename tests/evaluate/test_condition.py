"""Condition fidelity: per-class agreement and a confusion matrix that matches scikit-learn's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.evaluate.classifiers import ImageClassifier, build_classifier, predict_proba
from synthmed.evaluate.condition import condition_fidelity
from synthmed.evaluate.tstr import TSTRConfig, train_reference_classifier


def test_confusion_matrix_matches_sklearn_for_three_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    synthetic = ImageArrays(
        rng.integers(0, 256, (30, 1, 16, 16), dtype=np.uint8),
        rng.integers(0, 3, 30),
        ["a", "b", "c"],
        [str(i) for i in range(30)],
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_classifier("small_cnn", num_classes=3, in_channels=1, small_cnn_width=8)
    model = ImageClassifier(net, arch="small_cnn", classes=["a", "b", "c"], in_channels=1, image_size_px=16).eval()
    section = condition_fidelity(classifier=model, synthetic=synthetic, out_dir=tmp_path / "condition_fidelity")
    pred = predict_proba(model, synthetic.pixels).argmax(axis=1)
    expected = confusion_matrix(synthetic.labels, pred, labels=[0, 1, 2])
    assert section["synthetic"]["confusion_matrix"] == expected.tolist()
    for k, name in enumerate(["a", "b", "c"]):
        assert section["synthetic"]["per_class"][name]["accuracy"] == pytest.approx(expected[k, k] / expected[k].sum())
    assert section["synthetic"]["accuracy"] == pytest.approx((pred == synthetic.labels).mean())
    assert "real_reference" not in section
    assert (tmp_path / section["figures"][0]["path"]).is_file()
    assert json.loads(json.dumps(section)) == section


def test_intended_classes_are_recognised_and_swapped_ones_are_not(tiny_dataset: Path, tmp_path: Path) -> None:
    train, val, test = (load_image_arrays(tiny_dataset, split=s) for s in ("train", "val", "test"))
    config = TSTRConfig(seeds=(0,), epochs=12, batch_size=8, lr=3e-3, image_size_px=16, small_cnn_width=8)
    model = train_reference_classifier(train, val, config=config)
    good = condition_fidelity(classifier=model, synthetic=train, reference=test, out_dir=tmp_path / "good")
    assert good["synthetic"]["balanced_accuracy"] >= 0.8
    assert good["real_reference"]["images"] == len(test)
    assert good["status"] == "good" and "intended class" in good["verdict"]
    assert good["verdict"].endswith(
        "Rests on: small_cnn classifier at 16 px; 24 synthetic images, 12 real test images."
    )
    named = condition_fidelity(
        classifier=model,
        synthetic=train,
        reference=test,
        out_dir=tmp_path / "named",
        rests_on="small_cnn (from scratch, 16 px, seed 0) trained on 24 real images",
    )
    assert named["rests_on"] == {"text": "small_cnn (from scratch, 16 px, seed 0) trained on 24 real images"}
    swapped = ImageArrays(train.pixels, 1 - train.labels, train.classes, train.ids)
    bad = condition_fidelity(classifier=model, synthetic=swapped, reference=test, out_dir=tmp_path / "bad")
    assert bad["synthetic"]["balanced_accuracy"] <= 0.2
    assert bad["status"] == "poor"


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with torch.random.fork_rng():
        net = build_classifier("small_cnn", num_classes=2, in_channels=1, small_cnn_width=8)
    model = ImageClassifier(net, arch="small_cnn", classes=["left", "right"], in_channels=1, image_size_px=16)
    empty = ImageArrays(np.zeros((0, 1, 16, 16), np.uint8), np.zeros(0, np.int64), ["left", "right"], [])
    with pytest.raises(ValueError, match="empty"):
        condition_fidelity(classifier=model, synthetic=empty, out_dir=tmp_path / "x")
    other = ImageArrays(np.zeros((2, 1, 16, 16), np.uint8), np.array([0, 1]), ["cat", "dog"], ["a", "b"])
    with pytest.raises(ValueError, match="differ from the classifier"):
        condition_fidelity(classifier=model, synthetic=other, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_classifier_at_chance_makes_the_check_uninformative(tiny_dataset: Path, tmp_path: Path) -> None:
    train, test = (load_image_arrays(tiny_dataset, split=s) for s in ("train", "test"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_classifier("small_cnn", num_classes=2, in_channels=1, small_cnn_width=8)
    untrained = ImageClassifier(net, arch="small_cnn", classes=["left", "right"], in_channels=1, image_size_px=16)
    section = condition_fidelity(classifier=untrained.eval(), synthetic=train, reference=test, out_dir=tmp_path / "x")
    assert section["real_reference"]["balanced_accuracy"] < 0.6
    assert section["status"] == "info" and "barely better than chance" in section["verdict"]
