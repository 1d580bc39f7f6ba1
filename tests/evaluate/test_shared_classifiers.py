"""Condition fidelity and explanations reuse the usefulness run's classifiers: each one is fitted once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _evaluate_helpers import write_image_set

from synthmed.data.arrays import load_image_arrays
from synthmed.evaluate import tstr
from synthmed.evaluate.classifiers import predict_proba
from synthmed.evaluate.run import EvalConfig, evaluate
from synthmed.evaluate.tstr_outputs import load_classifier

SETTINGS = {
    "tstr_epochs": 2,
    "tstr_seeds": (0,),
    "explain_images": 2,
    "lime_samples": 20,
    "tstr_overrides": {"min_steps": 4, "bootstrap_samples": 10, "small_cnn_width": 8, "batch_size": 8},
}


@pytest.fixture
def synthetic_set(tiny_dataset, tmp_path):
    test = load_image_arrays(tiny_dataset, split="test")
    return write_image_set(tmp_path / "synthetic", test.pixels, [test.classes[i] for i in test.labels])


@pytest.fixture
def fits(monkeypatch) -> list[tuple[str, int]]:
    """Every call of tstr.fit_classifier, as (training set size, seed); the real function still runs."""
    calls: list[tuple[int, int]] = []
    original = tstr.fit_classifier

    def counted(train, val, **kwargs):
        calls.append((len(train), kwargs["seed"]))
        return original(train, val, **kwargs)

    monkeypatch.setattr(tstr, "fit_classifier", counted)
    return calls


def test_real_trained_classifier_is_fitted_once_and_reused(tiny_dataset, synthetic_set, tmp_path, fits):
    out = tmp_path / "eval"
    metrics = json.loads(
        evaluate(
            EvalConfig(
                real_dir=tiny_dataset,
                synthetic_dir=synthetic_set,
                out_dir=out,
                skip=("fidelity", "diversity", "memorisation"),
                **SETTINGS,
            )
        ).read_text()
    )
    # Usefulness fits real, synthetic and real+synthetic once each (1 arch x 1 seed); nothing is fitted again.
    assert sorted(fits) == sorted([(24, 0), (12, 0), (36, 0)])
    assert "usefulness run's classifier" in metrics["condition_fidelity"]["classifier_source"]
    assert set(metrics["explanations"]["classifier_source"]) == {"real", "synthetic"}
    assert all("usefulness run's" in v for v in metrics["explanations"]["classifier_source"].values())
    # The reused classifier is the one usefulness scored: its real-test accuracy is the TRTR one.
    saved = next(c for c in metrics["usefulness"]["classifiers"] if c["train_set"] == "real")
    model = load_classifier(out / saved["weights"])
    test = load_image_arrays(tiny_dataset, split="test")
    balanced = np.mean([(predict_proba(model, test.pixels).argmax(1)[test.labels == k] == k).mean() for k in (0, 1)])
    assert balanced == pytest.approx(metrics["condition_fidelity"]["real_reference"]["balanced_accuracy"])
    assert balanced == pytest.approx(metrics["usefulness"]["results"]["small_cnn"]["real"]["balanced_accuracy"]["mean"])
    assert metrics["condition_fidelity"]["rests_on"]["classifiers"] == [
        {
            "arch": "small_cnn",
            "weights": "from scratch",
            "image_size_px": 16,
            "seed": 0,
            "trained_on": "real",
            "n_train_images": 24,
        }
    ]
    assert metrics["condition_fidelity"]["rests_on"]["n_scored_images"] == {"synthetic": 12, "real test": 12}
    assert [c["trained_on"] for c in metrics["explanations"]["rests_on"]["classifiers"]] == ["real", "synthetic"]
    for part in ("usefulness", "condition_fidelity", "explanations"):
        assert (
            "Rests on: " in metrics[part]["verdict"]
            and "small_cnn (from scratch, 16 px, seed 0)" in metrics[part]["rests_on"]["text"]
        )


def test_without_usefulness_each_classifier_is_fitted_once_here(tiny_dataset, synthetic_set, tmp_path, fits):
    metrics = json.loads(
        evaluate(
            EvalConfig(
                real_dir=tiny_dataset,
                synthetic_dir=synthetic_set,
                out_dir=tmp_path / "eval",
                skip=("fidelity", "diversity", "memorisation", "usefulness"),
                **SETTINGS,
            )
        ).read_text()
    )
    # Condition fidelity and explanations share the real-trained one; explanations add the synthetic-trained one.
    assert sorted(fits) == sorted([(24, 0), (12, 0)])
    assert "fitted for this section" in metrics["condition_fidelity"]["classifier_source"]
    assert metrics["explanations"]["status"] not in ("failed", "pending")
