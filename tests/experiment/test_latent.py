"""`synthmed run` with train.family = "latent": autoencoder + latent UNet stages end to end, skipping, refusing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from synthmed.cli import main
from synthmed.experiment.runner import RunResult, check_inputs, run_experiment
from synthmed.experiment.schema import read_experiment


def _run(path: Path, out: Path, *overrides: str) -> RunResult:
    """Run the experiment file `path` into `out` with --set `overrides`, quietly."""
    config, root = read_experiment(path, overrides=overrides, environ={})
    return run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)


def _steps(run: Path) -> list[dict]:
    """The events of a training run folder's stats.jsonl."""
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_tiny_latent_experiment_end_to_end_then_skips_every_stage(tiny_latent_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny_latent_experiment), "--out", str(out)]) == 0
    ae = json.loads((out / "autoencoder" / "model" / "config.json").read_text())
    assert ae["format"] == "synthmed-autoencoder-v1"
    assert ae["autoencoder"]["image_size_px"] == 16 and ae["autoencoder"]["latent_channels"] == 2
    assert max(s.get("step", 0) for s in _steps(out / "autoencoder")) == 2
    trained = json.loads((out / "train" / "config.json").read_text())
    assert trained["autoencoder"] == str((out / "autoencoder").resolve()) and trained["preset"] == "tiny"
    assert json.loads((out / "train" / "model" / "config.json").read_text())["format"] == "synthmed-latent-v1"
    manifest = pd.read_csv(out / "samples" / "manifest.csv")
    assert len(manifest) == 3 * 4  # 3 per phantom class
    assert set(manifest["provider"]) == {"synthmed-latent"} and set(manifest["sampler"]) == {"ddim"}
    assert set(manifest["guidance_scale"]) == {2.0}  # `synthmed sample`'s latent default
    assert json.loads((out / "eval" / "metrics.json").read_text())["usefulness"]["results"]["small_cnn"]["synthetic"]
    assert (out / "report.html").stat().st_size > 0
    stages = [s["stage"] for s in json.loads((out / "experiment.json").read_text())["stages"]]
    assert stages == ["prepare", "autoencoder", "train", "sample", "evaluate", "report"]

    before = {p: p.stat().st_mtime_ns for p in (out / "train" / "model" / "model.safetensors", out / "eval")}
    assert _run(tiny_latent_experiment, out).actions == dict.fromkeys(stages, "skipped")
    assert {p: p.stat().st_mtime_ns for p in before} == before

    more = tmp_path / "more"  # `synthmed sample RUN` samples the run's latent train/ folder
    assert main(["sample", str(out), "--out", str(more), "--n-per-class", "1", "--steps", "2"]) == 0
    assert set(pd.read_csv(more / "manifest.csv")["provider"]) == {"synthmed-latent"}

    # The autoencoder is a stage of its own: changing it is refused, naming it (the stages after it depend on it).
    with pytest.raises(ValueError, match="autoencoder stage .* ran with other settings"):
        _run(tiny_latent_experiment, out, "train.autoencoder.max_steps=3")


def test_the_family_is_part_of_the_train_stage_fingerprint(tiny_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tiny_experiment, out, "sample.enabled=false")
    latent = ["sample.enabled=false", "sample.grid_per_class=0", "train.family=latent", "train.autoencoder.max_steps=1"]
    with pytest.raises(ValueError, match="train stage .* ran with other settings"):
        _run(tiny_experiment, out, *latent)


def test_interrupted_latent_training_resumes_from_its_checkpoint(tiny_latent_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tiny_latent_experiment, out, "sample.enabled=false")
    state = json.loads((out / "stages.json").read_text())
    del state["train"]  # as if killed after the step-2 checkpoint of a 4-step run
    (out / "stages.json").write_text(json.dumps(state))
    result = _run(tiny_latent_experiment, out, "sample.enabled=false", "train.max_steps=4")
    assert result.actions == {"prepare": "skipped", "autoencoder": "skipped", "train": "ran"}
    events = _steps(out / "train")
    assert [e["step"] for e in events if e.get("event") == "resume"] == [2]
    assert max(e.get("step", 0) for e in events) == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.family=latents"], r"train.family: .*'pixel' or 'latent'"),
        (["train.autoencoder.preset=f8"], r"\[train.autoencoder\] is for family 'latent'"),
        (["train.family=latent", "train.preset=256"], r"preset '256': not a latent UNet preset; choose one of"),
        (["train.family=latent", "train.model.block_out_channels=[8, 16]"], r"\[train.model\] is the pixel UNet"),
        (["train.family=latent", "train.autoencoder.preset=f16"], r"preset 'f16': unknown; choose one of"),
        (["train.family=latent", "train.autoencoder.kl_wieght=1"], r"\[train.autoencoder\] kl_wieght: unknown key"),
        (["train.family=latent", "train.autoencoder.channels=3"], r"channels: set by `synthmed run`"),
        (["train.family=latent", "train.hflip=true"], r"\[train\] hflip: unknown key"),
        (
            ["train.family=latent", "train.preset=32", "train.autoencoder.preset=f8"],
            r"16 px images downsampled 8x leave 2x2 latents, which the 3-level",
        ),
        (["train.family=latent"], r"grid_per_class: pixel sampling only"),
        (["train.family=latent", "sample.grid_per_class=0", "sample.model_batch_size=4"], "model_batch_size"),
    ],
)
def test_latent_settings_are_checked_before_any_work(tiny_experiment: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_experiment(tiny_experiment, overrides=overrides, environ={})


def test_shipped_latent_experiment_dry_runs_with_an_autoencoder_stage(tmp_path: Path, capsys) -> None:
    path = Path(__file__).resolve().parents[2] / "experiments" / "cxr256_latent.toml"
    for profile, size_px in (("cpu", 64), ("gpu", 256)):
        config, _ = read_experiment(path, profile=profile, environ={})
        assert config.train.latent and config.data.prepare["size_px"] == size_px
        assert config.data.source == "cxr_kermany_224"  # the pixel route's data
    out = tmp_path / "run"
    root = tmp_path / "data"
    (root / "cxr_kermany_224").mkdir(parents=True)
    argv = ["run", str(path), "--profile", "cpu", "--dry-run", "--out", str(out), "--set", f"data_root='{root}'"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    planned = [s["stage"] for s in printed["stages"]]
    assert planned == ["prepare", "autoencoder", "train", "sample", "evaluate", "report"]
    assert not out.exists()


def test_flow_matching_latent_run_samples_with_the_flow_sampler(tiny_latent_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tiny_latent_experiment, out, "train.objective=flow_matching", "evaluate.enabled=false", "sample.n_per_class=1")
    assert json.loads((out / "train" / "config.json").read_text())["objective"] == "flow_matching"
    assert set(pd.read_csv(out / "samples" / "manifest.csv")["sampler"]) == {"flow_euler"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only on a machine without a GPU")
def test_fp16_autoencoder_training_without_a_gpu_is_refused_before_any_work(
    tiny_latent_experiment: Path, tmp_path: Path
) -> None:
    overrides = ["train.autoencoder.mixed_precision='fp16'"]
    config, root = read_experiment(tiny_latent_experiment, overrides=overrides, environ={})
    with pytest.raises(ValueError, match=r"\[train.autoencoder\] mixed_precision = 'fp16' needs a CUDA GPU"):
        check_inputs(config, data_root=root, run_dir=tmp_path / "run")
