"""The report shows what the verdicts rest on: dataset-card warnings, generator provenance, each section's basis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from synthmed.data.prepare import PrepareConfig, prepare_dataset
from synthmed.report import build_report
from synthmed.report.provenance import dataset_card, generator

EVIL = "<script>alert(1)</script>"


def _shortcut_dataset(root: Path) -> Path:
    """A prepared dataset whose classes differ in file format and size (a shortcut `prepare` warns about)."""
    rng = np.random.default_rng(0)
    for label, fmt, size in (("cat", "PNG", 40), ("dog", "JPEG", 56)):
        (root / "src" / label).mkdir(parents=True)
        for k in range(12):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(
                root / "src" / label / f"{k}.{fmt.lower()}", format=fmt
            )
    return prepare_dataset(root / "src", out_dir=root / "prepared", config=PrepareConfig(size_px=16))


def _synthetic_set(root: Path, dataset: Path) -> Path:
    """A synthetic set whose manifest carries `synthmed sample`'s provenance columns."""
    frame = pd.read_csv(dataset / "manifest.csv")
    frame = frame[frame["split"] == "train"][["image_id", "path", "label"]].head(6)
    frame["path"] = [str((dataset / p).resolve()) for p in frame["path"]]
    frame = frame.assign(
        synthetic=1,
        sampler="dpmpp",
        steps=25,
        guidance_scale=2.0,
        checkpoint=f"runs/{EVIL}/model",
        checkpoint_sha256="ab" * 32,
        model="diffusers-unet step 70000",
        provider="synthmed",
    )
    root.mkdir(parents=True)
    frame.to_csv(root / "manifest.csv", index=False)
    return root


def test_card_warnings_generator_and_rests_on_lines_are_in_the_report(tmp_path: Path) -> None:
    dataset = _shortcut_dataset(tmp_path)
    synthetic = _synthetic_set(tmp_path / "synthetic", dataset)
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    metrics = {
        "inputs": {"real_dataset": str(dataset), "synthetic_set": str(synthetic)},
        "usefulness": {"status": "good", "verdict": "Useful. Rests on: small_cnn (from scratch, 16 px, seed 0)."},
        "fidelity": {"status": "fair", "verdict": "Close.", "rests_on": {"text": "domain encoder, 24 images"}},
    }
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(eval_dir).read_text()
    card = json.loads((dataset / "card.json").read_text())
    assert any("file format differs between classes" in w for w in card["warnings"])
    assert "file format differs between classes" in html and "Dataset card warnings" in html
    assert "The dataset card lists" in html  # called out in the summary too
    for text in ("dpmpp", "ab" * 32, "70000", "guidance scale", "training steps"):
        assert text in html
    assert EVIL not in html  # a checkpoint path is text, escaped
    assert html.count("Rests on: small_cnn (from scratch, 16 px, seed 0).") == 2  # summary card and section
    assert "Useful.</p>" in html  # the verdict line itself stops before its basis
    assert "Rests on: domain encoder, 24 images" in html


def test_missing_card_and_provenance_are_said_not_invented(tiny_dataset: Path, tmp_path: Path) -> None:
    inputs = {"real_dataset": str(tiny_dataset), "synthetic_set": str(tiny_dataset)}
    assert "does not exist" in dataset_card(inputs, base=tmp_path)["note"]
    plain = generator(inputs, base=tmp_path)
    assert plain["fields"] == {} and "records no generator provenance" in plain["note"]
    gone = {"real_dataset": str(tmp_path / "nowhere"), "synthetic_set": str(tmp_path / "nowhere")}
    assert "not on this machine" in dataset_card(gone, base=tmp_path)["note"]
    assert "not on this machine" in generator(gone, base=tmp_path)["note"]


def test_mixed_generators_are_counted_not_merged(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "path": ["a.png", "b.png", "c.png"],
            "label": ["x", "x", "y"],
            "sampler": ["ddim", "ddim", "dpmpp"],
            "model": ["unet step 100", "unet step 100", "unet step 900"],
        }
    ).to_csv(folder / "manifest.csv", index=False)
    result = generator({"synthetic_set": str(folder)}, base=tmp_path)
    assert result["fields"]["sampler"] == "ddim (2 images); dpmpp (1 image)"
    assert result["fields"]["training steps"] == "100, 900" and result["n_images"] == 3
