"""Usefulness (TSTR): metrics agree with scikit-learn; known cases give known answers on the tiny dataset."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.evaluate.classifiers import predict_proba
from synthmed.evaluate.tstr import (
    TSTRConfig, classification_metrics, run_tstr, train_reference_classifier, tstr_verdict,
)

FAST = dict(seeds=(0, 1), epochs=12, batch_size=8, lr=3e-3, image_size_px=16, small_cnn_width=8,
            bootstrap_samples=100, augment_shift_px=1)


@pytest.fixture
def splits(tiny_dataset: Path) -> dict[str, ImageArrays]:
    return {s: load_image_arrays(tiny_dataset, split=s) for s in ("train", "val", "test")}


def _swap_labels(arrays: ImageArrays) -> ImageArrays:
    return ImageArrays(arrays.pixels, 1 - arrays.labels, arrays.classes, arrays.ids)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_metrics_agree_with_sklearn(num_classes: int) -> None:
    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes, 200)
    proba = rng.dirichlet(np.ones(num_classes), 200)
    proba[np.arange(200), y] += rng.uniform(0, 0.5, 200)  # some signal
    proba /= proba.sum(axis=1, keepdims=True)
    ours = classification_metrics(y, proba, num_classes)
    pred = proba.argmax(axis=1)
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ours["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    expected_auc = (roc_auc_score(y, proba[:, 1]) if num_classes == 2
                    else roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert ours["macro_auc"] == pytest.approx(expected_auc)
    np.testing.assert_allclose(ours["per_class_recall"], recall_score(y, pred, average=None))


def test_absent_test_class_gives_none_recall_not_a_crash() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    result = classification_metrics(y, proba, 3)
    assert result["per_class_recall"] == [1.0, 0.5, None]
    assert result["balanced_accuracy"] == pytest.approx(0.75)


def test_real_trained_classifier_is_clearly_above_chance(splits: dict) -> None:
    model = train_reference_classifier(splits["train"], splits["val"], config=TSTRConfig(**FAST))
    pred = predict_proba(model, splits["test"].pixels).argmax(axis=1)
    assert (pred == splits["test"].labels).mean() >= 0.8
    assert model.classes == ["left", "right"]


def test_synthetic_copy_of_real_train_gives_ratio_about_one(splits: dict, tmp_path: Path) -> None:
    out_dir = tmp_path / "eval" / "usefulness"
    config = TSTRConfig(**FAST, conditions=("real", "synthetic"))
    section = run_tstr(real_train=splits["train"], real_val=splits["val"], real_test=splits["test"],
                       synthetic=splits["train"], config=config, out_dir=out_dir)
    ratio = section["ratios"]["small_cnn"]["tstr_over_trtr"]["balanced_accuracy"]
    assert ratio["mean"] == pytest.approx(1.0, abs=0.1)
    assert ratio["ci_low"] <= ratio["mean"] <= ratio["ci_high"]
    real = section["results"]["small_cnn"]["real"]["balanced_accuracy"]
    assert len(real["per_seed"]) == 2 and real["mean"] >= 0.8
    assert set(section["results"]["small_cnn"]["real"]["per_class_recall"]) == {"left", "right"}
    assert section["status"] == "good" and "synthetic" in section["verdict"]
    assert section["figures"][0]["path"] == "usefulness/tstr.png"
    assert (tmp_path / "eval" / section["figures"][0]["path"]).stat().st_size > 1000
    assert json.loads(json.dumps(section)) == section
    assert json.loads((out_dir / "tstr.json").read_text())["ratios"] == section["ratios"]

    # Had the real-trained classifier stayed at chance, a ratio of about 1 would mean nothing.
    at_chance = copy.deepcopy(section)
    at_chance["results"]["small_cnn"]["real"]["balanced_accuracy"].update(mean=0.52, ci_low=0.46, ci_high=0.58)
    verdict = tstr_verdict(at_chance, arch="small_cnn")
    assert verdict["status"] == "info" and "did not learn" in verdict["verdict"] and "0.50" in verdict["verdict"]
    at_chance["results"]["small_cnn"]["real"]["balanced_accuracy"].update(ci_low=None)  # no bootstrap
    assert tstr_verdict(at_chance, arch="small_cnn")["status"] == "info"


def test_swapped_labels_give_accuracy_below_chance(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(**{**FAST, "seeds": (0,)}, conditions=("real", "synthetic"))
    section = run_tstr(real_train=splits["train"], real_val=None, real_test=splits["test"],
                       synthetic=_swap_labels(splits["train"]), config=config, out_dir=tmp_path / "usefulness")
    assert section["results"]["small_cnn"]["synthetic"]["accuracy"]["mean"] < 0.3
    assert section["results"]["small_cnn"]["synthetic"]["macro_auc"]["mean"] < 0.3
    assert section["status"] == "poor"


def test_training_is_reproducible_and_leaves_global_rng_alone(splits: dict) -> None:
    config = TSTRConfig(**{**FAST, "epochs": 2})
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = predict_proba(train_reference_classifier(splits["train"], None, config=config), splits["test"].pixels)
    assert torch.rand(1) == expected_next  # the global RNG stream was not consumed or reseeded
    second = predict_proba(train_reference_classifier(splits["train"], None, config=config), splits["test"].pixels)
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_clear_errors(splits: dict, tmp_path: Path) -> None:
    out_dir = tmp_path / "usefulness"
    other_classes = ImageArrays(splits["train"].pixels, splits["train"].labels, ["a", "b"], splits["train"].ids)
    with pytest.raises(ValueError, match="differ from the real training classes"):
        run_tstr(real_train=splits["train"], real_val=None, real_test=splits["test"], synthetic=other_classes,
                 config=TSTRConfig(**FAST), out_dir=out_dir)
    empty = splits["train"].subset(np.zeros(len(splits["train"]), dtype=bool))
    with pytest.raises(ValueError, match="synthetic image set is empty"):
        run_tstr(real_train=splits["train"], real_val=None, real_test=splits["test"], synthetic=empty,
                 config=TSTRConfig(**FAST), out_dir=out_dir)
    with pytest.raises(ValueError):
        TSTRConfig(archs=("alexnet",))
    assert not out_dir.exists()  # refused before anything was written


def test_missing_weights_dir_file_names_the_expected_file(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(**{**FAST, "epochs": 1}, archs=("resnet50",), weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        train_reference_classifier(splits["train"], None, config=config)


def test_last_epoch_selection_never_looks_at_real_labels(splits: dict) -> None:
    config = TSTRConfig(**{**FAST, "epochs": 2, "min_steps": 0}, model_selection="last_epoch")
    without_val = train_reference_classifier(splits["train"], None, config=config)
    with_swapped_val = train_reference_classifier(splits["train"], _swap_labels(splits["val"]), config=config)
    np.testing.assert_allclose(predict_proba(without_val, splits["test"].pixels),
                               predict_proba(with_swapped_val, splits["test"].pixels), rtol=1e-5, atol=1e-6)
