"""Tiny versions of every shipped experiment file, run end to end on small folders laid out as the shared data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SHIPPED = sorted(p.name for p in EXPERIMENTS.glob("*.toml"))


def _image(rng: np.random.Generator, mode: str, size: tuple[int, int]) -> Image.Image:
    """A smooth random image (a blob on a ramp) in the given PIL mode and (width, height)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    grey = 0.4 * xx + np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03) + 0.1 * rng.random((h, w))
    pixels = (255 * grey / grey.max()).astype(np.uint8)
    return Image.fromarray(pixels, "L").convert(mode)


def _write(folder: Path, names: list[str], rng: np.random.Generator, mode: str = "L", size=(40, 40)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _image(rng, mode, size).save(folder / name)


def _brain(root: Path, rng: np.random.Generator) -> None:
    """all/CLASS/N.jpg; notumor RGB and not square, as the real folder's (the trap the file's crop handles)."""
    for c, cls in enumerate(["glioma", "meningioma", "notumor", "pituitary"]):
        mode, size = ("RGB", (48, 36)) if cls == "notumor" else ("L", (40, 40))
        _write(root / "brain_mri_4class" / "all" / cls, [f"{100 * c + i}.jpg" for i in range(12)], rng, mode, size)


def _blood(root: Path, rng: np.random.Generator) -> None:
    for cls in ["Benign", "Early", "Pre", "Pro"]:
        names = [f"WBC-Malignant-{cls}-{i}.jpg" for i in range(12)]
        _write(root / "all_blood_smear" / "all" / cls, names, rng, "RGB")


def _lung_ct(root: Path, rng: np.random.Generator) -> None:
    """Crops of published figures: two crops per source figure share the id the file's patient_id_regex reads."""
    covid = [f"2020.03.{10 + i // 2:02d}.2002{i // 2:04d}-p{i % 2 + 3}-{i}%{i % 2}.png" for i in range(14)]
    _write(root / "lungct_covid_ucsd" / "all" / "CT_COVID", covid, rng, "RGBA", (44, 36))
    noncovid = [f"{i // 2}%{i % 2}.jpg" for i in range(14)]
    _write(root / "lungct_covid_ucsd" / "all" / "CT_NonCOVID", noncovid, rng, "RGB", (36, 40))


def _cxr(root: Path, rng: np.random.Generator) -> None:
    """train/ and test/ as Kermany's: several images per patient (personN_ and IM-NNNN names)."""
    for split, n in (("train", 12), ("test", 4)):
        offset = 0 if split == "train" else 500
        normal = [f"IM-{offset + i // 2:04d}-000{i % 2 + 1}.jpeg" for i in range(n)]
        normal += [f"NORMAL2-IM-{offset + i:04d}-0001.jpeg" for i in range(n // 2)]
        pneumonia = [f"person{offset + i // 2}_bacteria_{i}.jpeg" for i in range(n + n // 2)]
        _write(root / "cxr_kermany_224" / split / "NORMAL", normal, rng, "RGB")
        _write(root / "cxr_kermany_224" / split / "PNEUMONIA", pneumonia, rng, "RGB")


TINY = [
    "data.prepare.size_px=32",  # VGG-19's five poolings need 32 px
    "train.preset=tiny",
    "train.max_steps=2",
    "train.batch_size=8",
    "train.checkpoint_every_steps=1",
    "sample.n_per_class=3",
    "sample.steps=2",
    "evaluate.tstr_epochs=1",
    "evaluate.tstr_max_train_images=16",
    "evaluate.tstr_overrides={ min_steps = 1, batch_size = 8, small_cnn_width = 8 }",
    "evaluate.explain_images=1",
    "evaluate.lime_samples=10",
    "evaluate.bootstrap_samples=10",
    "evaluate.encoder_epochs=1",
]
LATENT = [
    "train.autoencoder.preset=tiny",
    "train.autoencoder.block_out_channels=[8, 16]",
    "train.autoencoder.latent_channels=2",
    "train.autoencoder.max_steps=2",
    "train.autoencoder.batch_size=8",
    "train.autoencoder.checkpoint_every_steps=1",
    "train.grid_sampler_steps=2",
]
STUDY = ["study.all_synthetic.cases=4", "study.mixed.cases=4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shared_data")
    rng = np.random.default_rng(0)
    for make in (_brain, _blood, _lung_ct, _cxr):
        make(root, rng)
    return root


def test_every_shipped_file_is_covered() -> None:
    assert len(SHIPPED) >= 9 and {"cxr256_latent.toml", "all_architectures_covid_ct.toml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiment_runs_end_to_end_at_tiny_size(name: str, data_root: Path, tmp_path: Path, capsys) -> None:
    text = (EXPERIMENTS / name).read_text()
    sets = [f"data_root={data_root}", *TINY]
    sets += LATENT if "cxr256_latent" in name else []
    sets += STUDY if "[study." in text else []
    out = tmp_path / "run"
    args = ["run", str(EXPERIMENTS / name), "--profile", "cpu", "--out", str(out)]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0, capsys.readouterr().err

    stages = json.loads((out / "stages.json").read_text())
    expected = {"prepare", "train", "sample", "evaluate", "report"} | ({"autoencoder"} if "latent" in name else set())
    assert expected <= set(stages)
    experiment = json.loads((out / "experiment.json").read_text())
    archs = experiment["experiment"]["evaluate"]["tstr_archs"]
    with (out / "tables" / "paper_comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["arch"] for r in rows} == set(archs)  # every classifier the file names was trained and scored
    if "all_architectures" in name:
        assert set(archs) == {"vgg19", "densenet121", "resnet50", "small_cnn"}
    legend = (out / "tables" / "paper_comparison.md").read_text()
    assert "replacing real images with synthetic ones" in legend  # tstr_max_train_images caps the real+synthetic mix
    paper_rows = [r for r in rows if r["paper_value"]]
    if name.startswith(("brain_mri", "all_densenet", "covid_ct", "all_architectures")):
        assert len(paper_rows) == 1 and paper_rows[0]["train_set"] == "synthetic"  # the paper's figure beside it
    if "[study." in text:
        assert {p.name for p in (out / "study").iterdir()} == {"all_synthetic", "mixed"}
    manifest = list(csv.DictReader((out / "dataset" / "manifest.csv").open()))
    if name.startswith(("cxr", "covid_ct", "all_architectures_covid")):
        # patient ids come from the file names, so each patient (or source figure) sits in one split
        splits: dict[str, set[str]] = {}
        for row in manifest:
            splits.setdefault(row["patient_id"], set()).add(row["split"])
        assert len(splits) < len(manifest) and all(len(s) == 1 for s in splits.values())
