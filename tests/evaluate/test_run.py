"""`synthmed evaluate` end to end on the tiny dataset, and its defined outcome for each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _evaluate_helpers import write_image_set

from synthmed.cli import main
from synthmed.data.arrays import load_image_arrays
from synthmed.evaluate.run import PARTS, EvalConfig, evaluate

FAST = ["--encoder-epochs", "1", "--bootstrap", "5"]


@pytest.fixture
def synthetic_set(tiny_dataset, tmp_path):
    """Synthetic images = the tiny dataset's test images plus two exact training copies (labels aligned)."""
    test = load_image_arrays(tiny_dataset, split="test")
    train = load_image_arrays(tiny_dataset, split="train")
    pixels = np.concatenate([test.pixels, train.pixels[:2]])
    labels = [test.classes[i] for i in test.labels] + [train.classes[i] for i in train.labels[:2]]
    return write_image_set(tmp_path / "synthetic", pixels, labels)


def test_evaluate_writes_metrics_json_with_every_section(tiny_dataset, synthetic_set, tmp_path):
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(synthetic_set),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--skip",
            "tstr,condition,explain",
            *FAST,
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"inputs", *PARTS, "timings_s"}
    assert metrics["inputs"]["counts"] == {"real_train": 24, "real_val": 8, "real_test": 12, "synthetic": 14}
    assert metrics["inputs"]["classes"] == ["left", "right"]
    fidelity = metrics["fidelity"]
    extractor = fidelity["rests_on"]["extractor"]
    assert extractor["extractor"] == "domain" and extractor["encoder_training"]["epochs"] == 1
    assert set(fidelity["panels"]) == {"intensity", "texture", "semantic"}
    assert set(fidelity["panels"]["texture"]["per_class"]) == {"left", "right"}
    assert fidelity["rests_on"]["heldout_split"] == "val" and fidelity["rests_on"]["n_heldout"] == 8
    assert "Too few images" in fidelity["verdict"]  # 4 held-out images per class: no verdict is claimed
    semantic = fidelity["semantic_fid_kid_prdc"]
    assert semantic["overall"]["synthetic"]["fid"]["value"] >= 0 and "real_floor" in semantic["overall"]
    assert metrics["diversity"]["msssim_settings"]["image_size_px"] == 16
    memo = metrics["memorisation"]
    assert memo["n_synthetic"] == 14 and memo["n_flagged"] >= 2  # the two planted training copies
    assert {row["synthetic_id"] for row in memo["top_pairs"][:2]} == {"s00012", "s00013"}
    for part in ("fidelity", "diversity", "memorisation"):
        assert isinstance(metrics[part]["verdict"], str) and metrics[part]["verdict"]
        for figure in metrics[part]["figures"]:
            assert (out / figure["path"]).is_file() and figure["path"].startswith(part + "/")
    assert metrics["usefulness"]["status"] == "skipped"
    assert {"load", "features", "fidelity", "diversity", "memorisation", "total"} <= set(metrics["timings_s"])
    assert (out / "memorisation" / "nearest.csv").is_file()


@pytest.mark.slow
def test_evaluate_runs_usefulness_condition_and_explanations(tiny_dataset, synthetic_set, tmp_path):
    out = tmp_path / "eval"
    path = evaluate(
        EvalConfig(
            real_dir=tiny_dataset,
            synthetic_dir=synthetic_set,
            out_dir=out,
            skip=("fidelity", "diversity", "memorisation"),
            tstr_epochs=1,
            tstr_seeds=(0,),
            tstr_overrides={"min_steps": 2, "bootstrap_samples": 20},
            explain_images=2,
            lime_samples=20,
        )
    )
    metrics = json.loads(path.read_text())
    for part in ("usefulness", "condition_fidelity", "explanations"):
        assert metrics[part].get("status") not in ("failed", "pending", "not available"), metrics[part]
        assert metrics[part]["verdict"] and all((out / f["path"]).is_file() for f in metrics[part]["figures"])
    assert metrics["status"]["failed_parts"] == []


@pytest.mark.parametrize("kind", ["noise", "fresh"])
def test_pure_noise_reads_poor_everywhere_and_fresh_real_images_read_good(prepared_dataset_factory, tmp_path, kind):
    """An untrained generator's output (uniform noise) must not pass fidelity, precision or diversity; new images
    drawn like the real ones must pass fidelity."""
    real = prepared_dataset_factory(tmp_path / "real", per_class={"train": 80, "val": 40, "test": 4}, seed=0)
    if kind == "noise":
        pixels = np.random.default_rng(1).integers(0, 256, (80, 1, 16, 16), dtype=np.uint8)
    else:
        fresh = prepared_dataset_factory(tmp_path / "fresh", per_class={"train": 40}, seed=7)
        pixels = load_image_arrays(fresh, split="train").pixels
    labels = ["left"] * 40 + ["right"] * 40
    synthetic = write_image_set(tmp_path / "synthetic", pixels, labels)
    path = evaluate(
        EvalConfig(
            real_dir=real,
            synthetic_dir=synthetic,
            out_dir=tmp_path / "eval",
            encoder_epochs=2,
            cache_dir=tmp_path / "cache",
            skip=("usefulness", "condition_fidelity", "explanations", "memorisation"),
        )
    )
    metrics = json.loads(path.read_text())
    fidelity, diversity = metrics["fidelity"], metrics["diversity"]
    precision = fidelity["precision_recall_all_panels"]["synthetic"]["precision"]
    if kind == "noise":
        assert fidelity["status"] == "poor" and diversity["status"] == "poor", (fidelity["verdict"], diversity)
        assert precision < 0.2 and "noise" in diversity["verdict"]
    else:
        assert fidelity["status"] == "good", fidelity["verdict"]
        assert precision > 0.7 and diversity["status"] == "good"


def test_synthetic_labels_outside_the_real_classes_are_refused(tiny_dataset, tmp_path, capsys):
    bad = write_image_set(tmp_path / "bad", np.zeros((3, 1, 16, 16), np.uint8), ["left", "middle", "right"])
    code = main(["evaluate", "--real", str(tiny_dataset), "--synthetic", str(bad), "--out", str(tmp_path / "eval")])
    assert code == 2 and "middle" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_missing_folders_and_weights_are_refused_before_any_work(tiny_dataset, synthetic_set, tmp_path, capsys):
    code = main(
        ["evaluate", "--real", str(tmp_path / "nope"), "--synthetic", str(synthetic_set), "--out", str(tmp_path / "e1")]
    )
    assert code == 2 and "synthmed prepare" in capsys.readouterr().err
    code = main(
        ["evaluate", "--real", str(tiny_dataset), "--synthetic", str(tmp_path / "nope"), "--out", str(tmp_path / "e2")]
    )
    assert code == 2 and "manifest.csv" in capsys.readouterr().err
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(synthetic_set),
            "--out",
            str(tmp_path / "e3"),
            "--extractor",
            "inception",
            "--cache-dir",
            str(tmp_path / "empty"),
        ]
    )
    assert code == 2 and "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("e1", "e2", "e3"))


def test_unknown_part_and_bad_numbers_are_refused(tiny_dataset, synthetic_set, tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(synthetic_set),
            "--out",
            str(tmp_path / "e"),
            "--skip",
            "fidelty",
        ]
    )
    assert code == 2 and "skip" in capsys.readouterr().err
    with pytest.raises(ValueError):
        EvalConfig(real_dir=tiny_dataset, synthetic_dir=synthetic_set, out_dir=tmp_path, max_real=1)
    assert EvalConfig(
        real_dir=tiny_dataset, synthetic_dir=synthetic_set, out_dir=tmp_path, skip="tstr,explain"
    ).skip == ("usefulness", "explanations")


def test_foreign_output_folder_and_foreign_weights_are_refused_before_writing(
    tiny_dataset, synthetic_set, tmp_path, capsys
):
    """Cold-test findings: --out pointing at the samples folder mixed outputs into it; another network's
    weights passed as Inception gave a traceback and left a partial metrics.json."""
    code = main(
        ["evaluate", "--real", str(tiny_dataset), "--synthetic", str(synthetic_set), "--out", str(synthetic_set)]
    )
    assert code == 2 and "holds other files" in capsys.readouterr().err
    assert not (synthetic_set / "metrics.json").exists()
    import torch

    foreign = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, foreign)
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(synthetic_set),
            "--out",
            str(tmp_path / "e"),
            "--extractor",
            "inception",
            "--weights",
            str(foreign),
        ]
    )
    assert code == 2 and "Inception" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_a_one_class_dataset_makes_the_classifier_parts_not_available(prepared_dataset_factory, tmp_path):
    import pandas as pd

    real = prepared_dataset_factory(tmp_path / "real", per_class={"train": 10, "val": 4, "test": 4}, seed=0)
    manifest = pd.read_csv(real / "manifest.csv")
    manifest[manifest["label"] == "left"].to_csv(real / "manifest.csv", index=False)
    info = json.loads((real / "dataset.json").read_text())
    (real / "dataset.json").write_text(json.dumps(info | {"classes": ["left"]}))
    left = load_image_arrays(real, split="test")
    synthetic = write_image_set(tmp_path / "synthetic", left.pixels, ["left"] * len(left))
    path = evaluate(
        EvalConfig(real_dir=real, synthetic_dir=synthetic, out_dir=tmp_path / "eval", skip=("fidelity", "memorisation"))
    )
    metrics = json.loads(path.read_text())
    for part in ("usefulness", "condition_fidelity", "explanations"):
        assert metrics[part]["status"] == "not available" and "one class" in metrics[part]["note"]
    assert metrics["status"]["failed_parts"] == [] and "diversity" in metrics


def test_synthetic_images_of_another_size_or_mode_are_converted_and_say_so(tiny_dataset, tmp_path):
    rng = np.random.default_rng(0)
    test = load_image_arrays(tiny_dataset, split="test")
    small_rgb = rng.integers(0, 256, (len(test), 3, 8, 8), dtype=np.uint8)
    synthetic = write_image_set(tmp_path / "synthetic", small_rgb, [test.classes[i] for i in test.labels])
    skip = tuple(p for p in PARTS if p != "diversity")
    path = evaluate(EvalConfig(real_dir=tiny_dataset, synthetic_dir=synthetic, out_dir=tmp_path / "eval", skip=skip))
    inputs = json.loads(path.read_text())["inputs"]
    size = inputs["image_size_px"]
    assert inputs["synthetic_as_stored"]["sizes_px"] == {"8x8": len(test)}
    assert f"resized from 8x8 to {size}x{size} px" in inputs["synthetic_conversion"]
    assert "converted from mode RGB to grey" in inputs["synthetic_conversion"]
    same = evaluate(EvalConfig(real_dir=tiny_dataset, synthetic_dir=tiny_dataset, out_dir=tmp_path / "e2", skip=skip))
    assert json.loads(same.read_text())["inputs"]["synthetic_conversion"] == "none"
