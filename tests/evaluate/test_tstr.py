"""Usefulness (TSTR): metrics agree with scikit-learn; known cases give known answers on the tiny dataset."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.evaluate.classifiers import predict_proba
from synthmed.evaluate.tstr import (
    TSTRConfig,
    classification_metrics,
    run_tstr,
    train_reference_classifier,
    tstr_verdict,
)

FAST = dict(
    seeds=(0, 1),
    epochs=12,
    batch_size=8,
    lr=3e-3,
    image_size_px=16,
    small_cnn_width=8,
    bootstrap_samples=100,
    augment_shift_px=1,
)


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
    expected_auc = (
        roc_auc_score(y, proba[:, 1])
        if num_classes == 2
        else roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert ours["macro_auc"] == pytest.approx(expected_auc)
    np.testing.assert_allclose(ours["per_class_recall"], recall_score(y, pred, average=None))
    precision, _, f1, _ = precision_recall_fscore_support(y, pred, labels=np.arange(num_classes), zero_division=0)
    np.testing.assert_allclose(ours["per_class_precision"], precision)
    np.testing.assert_allclose(ours["per_class_f1"], f1)
    assert ours["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert ours["confusion_matrix"] == confusion_matrix(y, pred, labels=np.arange(num_classes)).tolist()


def test_absent_test_class_gives_none_recall_not_a_crash() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    result = classification_metrics(y, proba, 3)
    assert result["per_class_recall"] == [1.0, 0.5, None]
    assert result["balanced_accuracy"] == pytest.approx(0.75)
    assert result["per_class_f1"][2] is None and result["per_class_precision"][2] is None  # never true, never predicted
    assert result["macro_f1"] == pytest.approx(f1_score(y, proba.argmax(axis=1), labels=[0, 1], average="macro"))


def test_real_trained_classifier_is_clearly_above_chance(splits: dict) -> None:
    model = train_reference_classifier(splits["train"], splits["val"], config=TSTRConfig(**FAST))
    pred = predict_proba(model, splits["test"].pixels).argmax(axis=1)
    assert (pred == splits["test"].labels).mean() >= 0.8
    assert model.classes == ["left", "right"]


def test_synthetic_copy_of_real_train_gives_ratio_about_one(splits: dict, tmp_path: Path) -> None:
    out_dir = tmp_path / "eval" / "usefulness"
    config = TSTRConfig(**FAST, conditions=("real", "synthetic"))
    section = run_tstr(
        real_train=splits["train"],
        real_val=splits["val"],
        real_test=splits["test"],
        synthetic=splits["train"],
        config=config,
        out_dir=out_dir,
    )
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
    verdict = tstr_verdict(at_chance)
    assert verdict["status"] == "info" and "did not learn" in verdict["verdict"] and "0.50" in verdict["verdict"]
    at_chance["results"]["small_cnn"]["real"]["balanced_accuracy"].update(ci_low=None)  # no bootstrap
    assert tstr_verdict(at_chance)["status"] == "info"


def test_swapped_labels_give_accuracy_below_chance(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(**{**FAST, "seeds": (0,)}, conditions=("real", "synthetic"))
    section = run_tstr(
        real_train=splits["train"],
        real_val=None,
        real_test=splits["test"],
        synthetic=_swap_labels(splits["train"]),
        config=config,
        out_dir=tmp_path / "usefulness",
    )
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
        run_tstr(
            real_train=splits["train"],
            real_val=None,
            real_test=splits["test"],
            synthetic=other_classes,
            config=TSTRConfig(**FAST),
            out_dir=out_dir,
        )
    empty = splits["train"].subset(np.zeros(len(splits["train"]), dtype=bool))
    with pytest.raises(ValueError, match="synthetic image set is empty"):
        run_tstr(
            real_train=splits["train"],
            real_val=None,
            real_test=splits["test"],
            synthetic=empty,
            config=TSTRConfig(**FAST),
            out_dir=out_dir,
        )
    with pytest.raises(ValueError):
        TSTRConfig(archs=("alexnet",))
    assert not out_dir.exists()  # refused before anything was written


def test_missing_weights_dir_file_names_the_expected_file(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(**{**FAST, "epochs": 1}, archs=("resnet50",), weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        train_reference_classifier(splits["train"], None, config=config)


def test_vgg19_without_weights_trains_the_recipe_and_says_so(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(**{**FAST, "seeds": (0,), "epochs": 1}, archs=("vgg19",), conditions=("real",), min_steps=2)
    model = train_reference_classifier(splits["train"], None, config=config)
    assert model.arch == "vgg19_bn_gap"
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    section = run_tstr(
        real_train=splits["train"],
        real_val=None,
        real_test=splits["test"],
        synthetic=splits["train"],
        config=config.model_copy(update={"bootstrap_samples": 10}),
        out_dir=tmp_path / "usefulness",
    )
    assert "vgg19_bn" in section["rests_on"]["classifiers"][0]["weights"]
    assert "from scratch as vgg19_bn" in section["verdict"]
    saved = json.loads((tmp_path / section["classifiers"][0]["config"]).read_text())
    assert saved["arch"] == "vgg19_bn_gap" and "vgg19_bn" in saved["initial_weights"]


def test_last_epoch_selection_never_looks_at_real_labels(splits: dict) -> None:
    config = TSTRConfig(**{**FAST, "epochs": 2, "min_steps": 0}, model_selection="last_epoch")
    without_val = train_reference_classifier(splits["train"], None, config=config)
    with_swapped_val = train_reference_classifier(splits["train"], _swap_labels(splits["val"]), config=config)
    np.testing.assert_allclose(
        predict_proba(without_val, splits["test"].pixels),
        predict_proba(with_swapped_val, splits["test"].pixels),
        rtol=1e-5,
        atol=1e-6,
    )


def _planted(real: float, synthetic: float, *, real_ci_low: float | None) -> dict:
    """One arch's results as run_tstr writes them (2 classes), with chosen balanced accuracies."""

    def stats(mean, low=None):
        return {"mean": mean, "ci_low": low, "ci_high": None if low is None else mean + 0.05}

    per_class = {"left": stats(0.5), "right": stats(0.5)}
    return {
        "real": {"balanced_accuracy": stats(real, real_ci_low), "per_class_recall": per_class},
        "synthetic": {"balanced_accuracy": stats(synthetic, synthetic - 0.05), "per_class_recall": per_class},
    }


def test_verdict_summarises_every_arch_whatever_their_order() -> None:
    planted = {
        "densenet121": _planted(0.90, 0.86, real_ci_low=0.85),  # ratio 0.96: good alone
        "resnet50": _planted(0.80, 0.48, real_ci_low=0.74),  # ratio 0.60: poor alone
        "vgg19": _planted(0.50, 0.50, real_ci_low=0.44),
    }  # did not learn: not counted
    verdicts = []
    for order in (
        ["densenet121", "resnet50", "vgg19"],
        ["vgg19", "resnet50", "densenet121"],
        ["resnet50", "vgg19", "densenet121"],
    ):
        results = {a: planted[a] for a in order}
        ratios = {
            a: {
                "tstr_over_trtr": {
                    "balanced_accuracy": {
                        "mean": r["synthetic"]["balanced_accuracy"]["mean"] / r["real"]["balanced_accuracy"]["mean"]
                    }
                }
            }
            for a, r in results.items()
        }
        verdicts.append(tstr_verdict({"results": results, "ratios": ratios, "test_images": 100}))
    assert verdicts[0] == verdicts[1] == verdicts[2]
    verdict = verdicts[0]
    assert verdict["status"] == "fair"  # median of 0.96 and 0.60 is 0.78; the first-listed arch decides nothing
    assert "between 0.60 and 0.96 across 2 architectures" in verdict["verdict"]
    assert "disagree" in verdict["verdict"] and "vgg19 (0.50)" in verdict["verdict"]
    assert verdict["tstr_over_trtr_balanced_accuracy_per_arch"] == pytest.approx(
        {"densenet121": 0.86 / 0.9, "resnet50": 0.6}
    )
    # Both learned-and-good: good; nothing learned: inconclusive, never "good".
    good = {
        "results": {"a": planted["densenet121"]},
        "ratios": {"a": {"tstr_over_trtr": {"balanced_accuracy": {"mean": 0.86 / 0.9}}}},
        "test_images": 100,
    }
    assert tstr_verdict(good)["status"] == "good"
    stuck = {
        "results": {"vgg19": planted["vgg19"]},
        "ratios": {"vgg19": {"tstr_over_trtr": {"balanced_accuracy": {"mean": 1.0}}}},
        "test_images": 100,
    }
    assert tstr_verdict(stuck)["status"] == "info" and "did not learn" in tstr_verdict(stuck)["verdict"]
    # A weak real-trained classifier that learned (0.62) over a synthetic-trained one stuck at chance: the ratio
    # (0.81) alone would read fair; nothing was learned from the synthetic images, so it is poor (COVID CT arm).
    weak = _planted(0.62, 0.50, real_ci_low=0.54)
    weak["synthetic"]["balanced_accuracy"].update(ci_low=0.50, ci_high=0.50)
    verdict = tstr_verdict(
        {
            "results": {"resnet50": weak},
            "ratios": {"resnet50": {"tstr_over_trtr": {"balanced_accuracy": {"mean": 0.81}}}},
            "test_images": 104,
        }
    )
    assert verdict["status"] == "poor" and "resnet50 (0.50) did not beat chance" in verdict["verdict"]
    assert "did not beat chance" in verdicts[0]["verdict"] and "resnet50 (0.48)" in verdicts[0]["verdict"]


@pytest.mark.slow
def test_permuted_archs_give_one_verdict_and_the_researcher_outputs(splits: dict, tmp_path: Path) -> None:
    # lr 1e-2 for 3 epochs: small_cnn learns the blobs, ResNet-50 from scratch does not. The old rule read
    # "good" with small_cnn listed first and "inconclusive" with resnet50 first.
    common = {
        "seeds": (0,),
        "epochs": 3,
        "min_steps": 0,
        "batch_size": 8,
        "lr": 1e-2,
        "image_size_px": 16,
        "small_cnn_width": 8,
        "bootstrap_samples": 30,
        "conditions": ("real", "synthetic"),
    }
    sections = {}
    for archs in (("small_cnn", "resnet50"), ("resnet50", "small_cnn")):
        sections[archs] = run_tstr(
            real_train=splits["train"],
            real_val=splits["val"],
            real_test=splits["test"],
            synthetic=splits["train"],
            config=TSTRConfig(**common, archs=archs),
            out_dir=tmp_path / "-".join(archs) / "usefulness",
        )
    first, second = sections.values()
    assert first["results"]["small_cnn"]["real"]["balanced_accuracy"]["mean"] >= 0.8  # the planted contrast holds
    assert first["results"]["resnet50"]["real"]["balanced_accuracy"]["ci_low"] <= 0.5
    assert (first["verdict"], first["status"]) == (second["verdict"], second["status"])
    assert first["status"] == "good" and "resnet50" in first["verdict"] and "Not counted" in first["verdict"]
    described = "resnet50 (from scratch, 16 px, seed 0); small_cnn (from scratch, 16 px, seed 0)"
    assert described in first["rests_on"]["text"] and described in first["verdict"]
    assert "24 real, 24 synthetic" in first["rests_on"]["text"] and first["rests_on"]["n_test_images"] == 12

    # Confusion matrix and per-class precision / recall / F1 for every classifier.
    out = tmp_path / "small_cnn-resnet50"
    for arch in ("small_cnn", "resnet50"):
        for cond in ("real", "synthetic"):
            entry = first["results"][arch][cond]
            matrix = np.array(entry["confusion_matrix_per_seed"]["0"])
            assert matrix.sum() == 12 and matrix.shape == (2, 2)
            assert set(entry["per_class"]) == {"left", "right"}
            assert entry["per_class"]["left"]["recall"]["mean"] == pytest.approx(matrix[0, 0] / matrix[0].sum())
            assert entry["per_class"]["left"]["support"] == matrix[0].sum()
    assert [f["path"] for f in first["figures"]] == [
        "usefulness/tstr.png",
        "usefulness/confusion_small_cnn.png",
        "usefulness/confusion_resnet50.png",
    ]

    # Saved classifiers reload to the same predictions (safetensors + JSON).
    from synthmed.evaluate.tstr_outputs import load_classifier

    assert {(c["arch"], c["train_set"], c["seed"]) for c in first["classifiers"]} == {
        (a, c, 0) for a in ("small_cnn", "resnet50") for c in ("real", "synthetic")
    }
    saved = next(c for c in first["classifiers"] if (c["arch"], c["train_set"]) == ("small_cnn", "real"))
    config = json.loads((out / saved["config"]).read_text())
    assert config["arch"] == "small_cnn" and config["classes"] == ["left", "right"] and config["image_size_px"] == 16
    reloaded = load_classifier(out / saved["weights"])
    balanced = balanced_accuracy_score(splits["test"].labels, predict_proba(reloaded, splits["test"].pixels).argmax(1))
    assert balanced == pytest.approx(first["results"]["small_cnn"]["real"]["balanced_accuracy"]["per_seed"][0])

    # results.csv and results.tex: per arch and training set, with intervals.
    import pandas as pd

    table = pd.read_csv(out / "usefulness" / "results.csv")
    assert set(table["arch"]) == {"small_cnn", "resnet50"} and set(table["train_set"]) == {"real", "synthetic"}
    row = table[(table["arch"] == "small_cnn") & (table["train_set"] == "real") & (table["metric"] == "macro_f1")]
    assert row["mean"].item() == pytest.approx(first["results"]["small_cnn"]["real"]["macro_f1"]["mean"])
    assert {"f1:left", "f1:right", "precision:left", "recall:right"} <= set(table["metric"])
    tex = (out / "usefulness" / "results.tex").read_text()
    assert tex.count(r"\\") >= 5 and "small\\_cnn & train real (TRTR)" in tex and r"\begin{tabular}" in tex
    assert first["tables"] == {"results.csv": "usefulness/results.csv", "results.tex": "usefulness/results.tex"}


def test_rests_on_counts_the_images_actually_trained_on(splits: dict, tmp_path: Path) -> None:
    config = TSTRConfig(
        **{**FAST, "seeds": (0,), "epochs": 1, "min_steps": 2, "bootstrap_samples": 10},
        conditions=("real", "synthetic"),
        max_train_images=10,
        save_classifiers="none",
    )
    section = run_tstr(
        real_train=splits["train"],
        real_val=None,
        real_test=splits["test"],
        synthetic=splits["train"],
        config=config,
        out_dir=tmp_path / "usefulness",
    )
    assert section["train_images"] == {"real": 10, "synthetic": 10}  # capped from 24
    assert "trained on 10 real, 10 synthetic images" in section["verdict"]
    assert section["classifiers"] == [] and not (tmp_path / "usefulness" / "classifiers").exists()
