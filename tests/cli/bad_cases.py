"""The damaged inputs of the bad-input test, one builder per command and problem (see test_bad_inputs.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from cli import corpus

EVAL_FAST = ["--skip", "usefulness,condition,explain", "--bootstrap", "0", "--encoder-epochs", "1"]


class Case(NamedTuple):
    """`build(tmp, base)` damages a copy of the base inputs and returns (argv, words the error names, out)."""

    id: str
    build: Callable[[Path, dict], tuple[list[str], list[str], Path | None]]


def _copy(base: dict, key: str, tmp: Path) -> Path:
    return corpus.copy_tree(base[key], tmp / key)


def _prepare_source(tmp: Path, name: str, data: bytes | None = None) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _evaluate(real: Path, synthetic: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--real", str(real), "--synthetic", str(synthetic), "--out", str(out), *EVAL_FAST, *extra]


def _image_name(folder: Path, split: str | None = None) -> str:
    return corpus.corrupt_first_image(folder, split=split).name


def _truncated_image_name(folder: Path, split: str | None = None) -> str:
    return corpus.corrupt_first_image(folder, split=split, how="truncate").name


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- prepare --------------------------------------------------------------------------------------------------


def _prepare(source: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", str(source), "--out", str(out), "--size", "16", "--workers", "1", *extra]


def prepare_empty(tmp, base):
    return _prepare(_mkdir(tmp / "empty"), tmp / "out"), ["empty", "no image files"], tmp / "out"


def prepare_all_corrupt(tmp, base):
    corpus.garbage(tmp / "src" / "a" / "one.png")
    (tmp / "src" / "b").mkdir()
    (tmp / "src" / "b" / "two.jpg").write_bytes(corpus.jpeg_bytes()[:40])
    return _prepare(tmp / "src", tmp / "out"), ["one.png", "could not be read", "Expected PNG"], tmp / "out"


def prepare_truncated_dicom(tmp, base):
    import numpy as np

    from synthmed.sample.dicom import write_synthetic_dicom

    path = write_synthetic_dicom(tmp / "scan.dcm", np.zeros((16, 16), np.uint8), description="x")
    corpus.truncate(path, 0.6)
    return _prepare(path, tmp / "out"), ["scan.dcm"], tmp / "out"


def prepare_corrupt_nifti(tmp, base):
    path = corpus.garbage(tmp / "vol.nii.gz")
    return _prepare(path, tmp / "out"), ["vol.nii.gz"], tmp / "out"


def prepare_corrupt_npz(tmp, base):
    path = corpus.garbage(tmp / "set.npz")
    return _prepare(path, tmp / "out"), ["set.npz"], tmp / "out"


def prepare_metadata_missing_column(tmp, base):
    src = tmp / "src"
    for cls in ("a", "b"):
        (src / cls).mkdir(parents=True)
        (src / cls / f"{cls}1.png").write_bytes(corpus.png_bytes())
    meta = _file(tmp / "meta.csv", "name,label\na1.png,a\n")
    return _prepare(src, tmp / "out", "--metadata", str(meta)), ["meta.csv", "file"], tmp / "out"


def prepare_existing_out(tmp, base):
    _file(tmp / "out" / "keep.txt")
    return _prepare(base["dataset"] / "images", tmp / "out"), ["--overwrite"], tmp / "out"


def sample_into_a_read_only_folder(tmp, base):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the case under a regular file covers it")
    folder = _mkdir(tmp / "readonly")
    folder.chmod(0o500)
    return _sample(base["model"], folder / "out"), ["readonly", "permissions"], folder / "out"


def prepare_out_under_a_file(tmp, base):
    _file(tmp / "afile")
    return _prepare(base["dataset"] / "images", tmp / "afile" / "out"), ["afile"], None


# --- train ----------------------------------------------------------------------------------------------------


def train_not_a_dataset(tmp, base):
    return corpus.train_argv(_mkdir(tmp / "empty"), tmp / "run"), ["dataset.json", "synthmed prepare"], tmp / "run"


def train_corrupt_png(tmp, base):
    dataset = _copy(base, "dataset", tmp)
    return corpus.train_argv(dataset, tmp / "run"), [_image_name(dataset, "train")], tmp / "run"


def train_truncated_png(tmp, base):
    dataset = _copy(base, "dataset", tmp)
    return corpus.train_argv(dataset, tmp / "run"), [_truncated_image_name(dataset, "train")], tmp / "run"


def train_manifest_missing_column(tmp, base):
    dataset = _copy(base, "dataset", tmp)
    corpus.drop_column(dataset, "label_idx")
    return corpus.train_argv(dataset, tmp / "run"), ["manifest.csv", "label_idx"], tmp / "run"


def train_corrupt_dataset_json(tmp, base):
    dataset = _copy(base, "dataset", tmp)
    _file(dataset / "dataset.json", "{not json")
    return corpus.train_argv(dataset, tmp / "run"), ["dataset.json"], tmp / "run"


def train_existing_run(tmp, base):
    _file(tmp / "run" / "config.json", "{}")
    return corpus.train_argv(base["dataset"], tmp / "run"), ["--resume"], tmp / "run"


# --- sample ---------------------------------------------------------------------------------------------------


def _sample(model: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", str(model), "--out", str(out), "--n-per-class", "1", "--steps", "2", *extra]


def sample_truncated_weights(tmp, base):
    model = _copy(base, "model", tmp)
    corpus.truncate(model / "unet" / "diffusion_pytorch_model.safetensors")
    return _sample(model, tmp / "out"), ["diffusion_pytorch_model.safetensors"], tmp / "out"


def sample_wrong_weights(tmp, base):
    model = _copy(base, "model", tmp)
    corpus.wrong_safetensors(model / "unet" / "diffusion_pytorch_model.safetensors")
    return _sample(model, tmp / "out"), ["diffusion_pytorch_model.safetensors"], tmp / "out"


def sample_empty_folder(tmp, base):
    return _sample(_mkdir(tmp / "empty"), tmp / "out"), ["empty", "synthmed train"], tmp / "out"


def sample_corrupt_config(tmp, base):
    model = _copy(base, "model", tmp)
    _file(model / "synthmed.json", '{"format": ')
    return _sample(model, tmp / "out"), ["synthmed.json"], tmp / "out"


def sample_existing_set(tmp, base):
    out = _copy(base, "synthetic", tmp)
    return _sample(base["model"], out), ["manifest.csv", "--out"], out


def sample_unknown_class(tmp, base):
    return _sample(base["model"], tmp / "out", "--classes", "zebra"), ["zebra"], tmp / "out"


# --- evaluate -------------------------------------------------------------------------------------------------


def evaluate_corrupt_synthetic_png(tmp, base):
    synthetic = _copy(base, "synthetic", tmp)
    return _evaluate(base["dataset"], synthetic, tmp / "eval"), [_image_name(synthetic)], tmp / "eval"


def evaluate_unknown_label(tmp, base):
    synthetic = _copy(base, "synthetic", tmp)
    corpus.relabel(synthetic, "zebra")
    return _evaluate(base["dataset"], synthetic, tmp / "eval"), ["zebra"], tmp / "eval"


def evaluate_missing_column(tmp, base):
    synthetic = _copy(base, "synthetic", tmp)
    corpus.drop_column(synthetic, "label")
    return _evaluate(base["dataset"], synthetic, tmp / "eval"), ["manifest.csv", "label"], tmp / "eval"


def evaluate_empty_synthetic(tmp, base):
    return _evaluate(base["dataset"], _mkdir(tmp / "empty"), tmp / "eval"), ["manifest.csv"], tmp / "eval"


def evaluate_inception_corrupt_weights(tmp, base):
    weights = corpus.garbage(tmp / "pt_inception.pth")
    argv = _evaluate(
        base["dataset"], base["synthetic"], tmp / "eval", "--extractor", "inception", "--weights", str(weights)
    )
    return argv, ["pt_inception.pth"], tmp / "eval"


def evaluate_xrv_truncated_weights(tmp, base):
    weights = corpus.truncate(corpus.wrong_pth(tmp / "xrv.pth"))
    argv = _evaluate(base["dataset"], base["synthetic"], tmp / "eval", "--extractor", "xrv", "--weights", str(weights))
    return argv, ["xrv.pth"], tmp / "eval"


def evaluate_tstr_weights_dir_empty(tmp, base):
    argv = [
        "evaluate",
        "--real",
        str(base["dataset"]),
        "--synthetic",
        str(base["synthetic"]),
        "--out",
        str(tmp / "eval"),
        "--skip",
        "fidelity,diversity,memorisation,condition,explain",
        "--tstr-archs",
        "resnet50",
        "--tstr-weights-dir",
        str(_mkdir(tmp / "weights")),
    ]
    return argv, ["--tstr-weights-dir", "resnet50-"], tmp / "eval"


# --- report, study, prompt, finetune, latent, demo --------------------------------------------------------------


def report_empty_folder(tmp, base):
    return ["report", str(_mkdir(tmp / "eval"))], ["metrics.json"], tmp / "eval"


def report_corrupt_metrics(tmp, base):
    _file(tmp / "eval" / "metrics.json", '{"inputs": ')
    return ["report", str(tmp / "eval")], ["metrics.json"], tmp / "eval"


def study_create_corrupt_png(tmp, base):
    synthetic = _copy(base, "synthetic", tmp)
    name = _image_name(synthetic)
    argv = [
        "study",
        "create",
        "--real",
        str(base["dataset"]),
        "--synthetic",
        str(synthetic),
        "--out",
        str(tmp / "study"),
        "--cases",
        "8",
        "--all-synthetic",
        "--reader",
        "a",
    ]
    return argv, [name], tmp / "study"


def study_analyze_not_a_study(tmp, base):
    return ["study", "analyze", str(_mkdir(tmp / "nostudy"))], ["study create"], tmp / "nostudy"


def prompt_openai_without_key(tmp, base):
    os.environ.pop("OPENAI_API_KEY", None)
    return (
        ["prompt", "chest x-ray", "--provider", "openai", "-n", "1", "--out", str(tmp / "out")],
        ["OPENAI_API_KEY"],
        tmp / "out",
    )


def prompt_local_sd_empty_checkpoint(tmp, base):
    argv = ["prompt", "x", "--provider", "local-sd", "--checkpoint", str(_mkdir(tmp / "sd")), "--out", str(tmp / "out")]
    return argv, ["sd"], tmp / "out"


def finetune_empty_checkpoint(tmp, base):
    argv = ["finetune", str(base["dataset"]), "--checkpoint", str(_mkdir(tmp / "sd")), "--out", str(tmp / "run")]
    return argv, ["sd"], tmp / "run"


def latent_autoencoder_corrupt_png(tmp, base):
    dataset = _copy(base, "dataset", tmp)
    argv = [
        "latent",
        "train-autoencoder",
        str(dataset),
        "--out",
        str(tmp / "ae"),
        "--preset",
        "tiny",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
    ]
    return argv, [_image_name(dataset, "train")], tmp / "ae"


def latent_train_truncated_autoencoder(tmp, base):
    ae = _mkdir(tmp / "ae")
    _file(ae / "config.json", "{}")
    corpus.garbage(ae / "model.safetensors")
    argv = [
        "latent",
        "train",
        str(base["dataset"]),
        "--autoencoder",
        str(ae),
        "--out",
        str(tmp / "run"),
        "--preset",
        "tiny",
        "--max-steps",
        "1",
    ]
    return argv, ["ae"], tmp / "run"


def latent_sample_empty_run(tmp, base):
    argv = ["latent", "sample", str(_mkdir(tmp / "run")), "--out", str(tmp / "out"), "--n-per-class", "1"]
    return argv, ["run"], tmp / "out"


def demo_out_under_a_file(tmp, base):
    _file(tmp / "afile")
    return ["demo", "--out", str(tmp / "afile" / "demo"), "--n-per-class", "8"], ["afile"], None


CASES = [
    Case(f.__name__, f)
    for f in (
        prepare_empty,
        sample_into_a_read_only_folder,
        prepare_all_corrupt,
        prepare_truncated_dicom,
        prepare_corrupt_nifti,
        prepare_corrupt_npz,
        prepare_metadata_missing_column,
        prepare_existing_out,
        prepare_out_under_a_file,
        train_not_a_dataset,
        train_corrupt_png,
        train_truncated_png,
        train_manifest_missing_column,
        train_corrupt_dataset_json,
        train_existing_run,
        sample_truncated_weights,
        sample_wrong_weights,
        sample_empty_folder,
        sample_corrupt_config,
        sample_existing_set,
        sample_unknown_class,
        evaluate_corrupt_synthetic_png,
        evaluate_unknown_label,
        evaluate_missing_column,
        evaluate_empty_synthetic,
        evaluate_inception_corrupt_weights,
        evaluate_xrv_truncated_weights,
        evaluate_tstr_weights_dir_empty,
        report_empty_folder,
        report_corrupt_metrics,
        study_create_corrupt_png,
        study_analyze_not_a_study,
        prompt_openai_without_key,
        prompt_local_sd_empty_checkpoint,
        finetune_empty_checkpoint,
        latent_autoencoder_corrupt_png,
        latent_train_truncated_autoencoder,
        latent_sample_empty_run,
        demo_out_under_a_file,
    )
]
