"""What `prepare -> train -> sample` hands out carries no operator path or user name, and provenance by hash."""

from __future__ import annotations

import getpass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from cli import corpus
from synthmed.cli import main
from synthmed.files import sha256_file

TEXT_SUFFIXES = {".csv", ".json", ".md", ".txt", ".jsonl"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """A raw folder prepared, trained for 2 steps and sampled (PNG + DICOM), run from inside the work folder."""
    root = tmp_path_factory.mktemp("work").resolve()
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / "raw" / label).mkdir(parents=True)
        for k in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(root / "raw" / label / f"p{k}.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        steps = [
            ["prepare", str(root / "raw"), "--out", str(root / "ds"), "--size", "16", "--workers", "1"],
            corpus.train_argv(root / "ds", root / "run"),
            [
                "sample",
                str(root / "run"),
                "--out",
                str(root / "samples"),
                "--n-per-class",
                "3",
                "--steps",
                "2",
                "--format",
                "png+dicom",
                "--batch-size",
                "4",
            ],
        ]
        for argv in steps:
            assert main(argv) == 0, argv
    return {"root": root, "dataset": root / "ds", "model": root / "run" / "model", "samples": root / "samples"}


def _header_text(path: Path) -> str:
    ds = pydicom.dcmread(path)
    del ds.PixelData
    return str(ds)


@pytest.mark.parametrize("output", ["dataset", "model", "samples"])
def test_shared_outputs_name_no_operator_path_or_user(pipeline, output):
    root, user = str(pipeline["root"]), getpass.getuser()
    leaks = []
    for path in sorted(pipeline[output].rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if root.encode() in data or str(Path.home()).encode() + b"/" in data:
            leaks.append(str(path))
        text = _header_text(path) if path.suffix == ".dcm" else data.decode() if path.suffix in TEXT_SUFFIXES else ""
        if f"/{user}/" in text or f"{user}@" in text:
            leaks.append(f"{path} (user name)")
    assert not leaks, leaks


def test_manifest_and_dicom_record_the_checkpoint_by_hash_and_relative_name(pipeline):
    manifest = pd.read_csv(pipeline["samples"] / "manifest.csv")
    digest = sha256_file(pipeline["model"] / "unet" / "diffusion_pytorch_model.safetensors")
    assert set(manifest["checkpoint"]) == {"run/model"}
    assert set(manifest["checkpoint_sha256"]) == {digest}
    ds = pydicom.dcmread(pipeline["samples"] / manifest["dicom_path"].iloc[0])
    assert ds.SyntheticData == "YES" and ds.ConversionType == "SYN"
    assert f"checkpoint run/model (sha256 {digest})" in ds.DerivationDescription
    assert f"seed {manifest['seed'].iloc[0]}" in ds.DerivationDescription


def test_sample_is_the_same_image_for_a_seed_whatever_the_batch_size(pipeline, tmp_path):
    assert (
        main(
            [
                "sample",
                str(pipeline["model"]),
                "--out",
                str(tmp_path / "one"),
                "--n-per-class",
                "3",
                "--steps",
                "2",
                "--batch-size",
                "1",
            ]
        )
        == 0
    )
    first = pd.read_csv(pipeline["samples"] / "manifest.csv")
    again = pd.read_csv(tmp_path / "one" / "manifest.csv")
    assert list(first["image_id"]) == list(again["image_id"])
    for a, b in zip(first["path"], again["path"]):
        np.testing.assert_array_equal(
            np.asarray(Image.open(pipeline["samples"] / a)), np.asarray(Image.open(tmp_path / "one" / b))
        )
