"""`synthmed run` end to end on a tiny phantom experiment: every stage, then skipping, resuming and refusing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from diffusers import DDPMScheduler

from synthmed.cli import main
from synthmed.experiment.runner import FLOW_DEFAULT_SAMPLER, run_experiment
from synthmed.experiment.schema import read_experiment
from synthmed.models.sampling import default_sampler


def test_tiny_experiment_end_to_end_then_skips_complete_stages(tiny_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny_experiment), "--profile", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "dataset" / "dataset.json").read_text())["image_size_px"] == 16
    assert list((out / "train" / "model").rglob("*.safetensors"))  # the trained model folder
    manifest = pd.read_csv(out / "samples" / "manifest.csv")
    assert len(manifest) == 3 * 4  # 3 per phantom class
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["usefulness"]["results"]["small_cnn"]["synthetic"]
    assert (out / "report.html").stat().st_size > 0
    recorded = json.loads((out / "experiment.json").read_text())
    assert recorded["profile"] == "cpu" and recorded["experiment"]["train"]["max_steps"] == 3
    assert {s["status"] for s in recorded["stages"]} == {"complete: ran in this run"}  # the plan as the run ended
    versions = json.loads((out / "versions.json").read_text())
    assert {"python", "torch", "diffusers", "synthmed", "platform"} <= set(versions)
    steps = [json.loads(line) for line in (out / "train" / "stats.jsonl").read_text().splitlines()]
    assert max(s.get("step", 0) for s in steps) == 3
    more = tmp_path / "more"  # `synthmed sample RUN` samples the run's train/ model
    assert main(["sample", str(out), "--out", str(more), "--n-per-class", "1", "--steps", "2"]) == 0
    assert len(pd.read_csv(more / "manifest.csv")) == 4

    before = {p: p.stat().st_mtime_ns for p in (out / "samples" / "manifest.csv", out / "eval" / "metrics.json")}
    config, root = read_experiment(tiny_experiment, profile="cpu", environ={})
    result = run_experiment(config, data_root=root, run_dir=out, profile="cpu", on_output=lambda _: None)
    assert set(result.actions.values()) == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in before} == before

    # Changed settings for a finished stage are refused before any work, naming the stage.
    config, root = read_experiment(tiny_experiment, profile="cpu", overrides=["sample.n_per_class=4"], environ={})
    with pytest.raises(ValueError, match="sample stage .* ran with other settings") as refused:
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    for output in ("samples", "eval", "report.html", "metrics.json", "tables"):  # every output to delete, at once
        assert str(out / output) in str(refused.value)

    # Another evaluation into the finished folder: delete eval/ and report.html; the report stage replaces the
    # report's own stale copies (RUN/metrics.json) instead of refusing them.
    config, root = read_experiment(
        tiny_experiment, profile="cpu", overrides=["evaluate.bootstrap_samples=12"], environ={}
    )
    shutil.rmtree(out / "eval")
    (out / "report.html").unlink()
    result = run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert result.actions["evaluate"] == result.actions["report"] == "ran"
    assert (out / "metrics.json").read_bytes() == (out / "eval" / "metrics.json").read_bytes()


def _trained_but_not_recorded(tiny_experiment: Path, out: Path) -> None:
    """A 2-step run whose training is not recorded complete in stages.json (as if killed after its last checkpoint)."""
    config, root = read_experiment(tiny_experiment, overrides=["sample.enabled=false"], environ={})
    run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    state = json.loads((out / "stages.json").read_text())
    del state["train"]
    (out / "stages.json").write_text(json.dumps(state))


def test_interrupted_training_resumes_and_unfinished_sampling_runs_again(tiny_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _trained_but_not_recorded(tiny_experiment, out)  # as if killed after the step-2 checkpoint of a 4-step run
    (out / "samples.partial").mkdir()  # a sampling run killed midway leaves this behind
    config, root = read_experiment(
        tiny_experiment, overrides=["train.max_steps=4", "evaluate.enabled=false"], environ={}
    )
    result = run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert result.actions == {"prepare": "skipped", "train": "ran", "sample": "ran"}
    events = [json.loads(line) for line in (out / "train" / "stats.jsonl").read_text().splitlines()]
    resumed = [e for e in events if e.get("event") == "resume"]
    assert resumed and resumed[0]["step"] == 2
    assert max(e.get("step", 0) for e in events) == 4
    assert len(pd.read_csv(out / "samples" / "manifest.csv")) == 12


def test_training_stopped_before_its_first_checkpoint_starts_over(tiny_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _trained_but_not_recorded(tiny_experiment, out)
    # As if killed before the first checkpoint: the training folder has its config and log, no checkpoint.
    shutil.rmtree(out / "train" / "checkpoints")
    shutil.rmtree(out / "train" / "model")
    config, root = read_experiment(tiny_experiment, overrides=["sample.enabled=false"], environ={})
    result = run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert result.actions["train"] == "ran"  # not refused as "already holds a training run"
    events = [json.loads(line) for line in (out / "train" / "stats.jsonl").read_text().splitlines()]
    assert not [e for e in events if e.get("event") == "resume"] and max(e.get("step", 0) for e in events) == 2


def test_weights_folder_errors_name_the_experiment_key(tiny_experiment: Path, tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    config, root = read_experiment(
        tiny_experiment,
        overrides=[f"evaluate.tstr_weights_dir='{empty}'", "evaluate.tstr_archs=['resnet50']"],
        environ={},
    )
    with pytest.raises(FileNotFoundError, match=r"\[evaluate\] tstr_weights_dir .* lacks resnet50-0676ba61.pth"):
        run_experiment(config, data_root=root, run_dir=tmp_path / "run", on_output=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_flow_matching_experiment_trains_flow_and_samples_with_a_flow_sampler(
    tiny_experiment: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    overrides = ["train.objective=flow_matching", "train.snr_gamma=5.0", "evaluate.enabled=false"]
    config, root = read_experiment(tiny_experiment, overrides=overrides, environ={})
    printed: list[str] = []
    run_experiment(config, data_root=root, run_dir=out, on_output=printed.append)
    trained = json.loads((out / "train" / "config.json").read_text())
    assert trained["model"]["prediction_type"] == "flow_prediction" and trained["snr_gamma"] is None
    assert set(pd.read_csv(out / "samples" / "manifest.csv")["sampler"]) == {"flow_euler"}
    recorded = json.loads((out / "experiment.json").read_text())
    assert "snr_gamma" not in recorded["experiment"]["train"] and "snr_gamma = 5.0 is ignored" in recorded["notes"][0]
    assert any("snr_gamma = 5.0 is ignored" in line for line in printed)
    assert default_sampler(DDPMScheduler(prediction_type="flow_prediction")) == FLOW_DEFAULT_SAMPLER  # one rule


def test_a_run_whose_first_stage_fails_leaves_no_run_folder(tiny_experiment: Path, tmp_path: Path) -> None:
    (tiny_experiment.parent / "data" / "empty").mkdir(parents=True)  # exists, but holds no images
    config, root = read_experiment(tiny_experiment, overrides=["data.source=empty"], environ={})
    out = tmp_path / "run"
    with pytest.raises((ValueError, OSError)):
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert not out.exists()
    out.mkdir()  # a folder the user made stays, empty
    with pytest.raises((ValueError, OSError)):
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert out.is_dir() and not any(out.iterdir())


def test_training_that_fails_at_once_on_a_prepared_dataset_leaves_no_run_folder(
    tiny_experiment: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    for image in (tiny_dataset / "images").iterdir():  # dataset.json says it is there; its images are not
        image.unlink()
    text = tiny_experiment.read_text().replace('source = "phantom"', f'prepared = "{tiny_dataset}"')
    tiny_experiment.write_text(text.replace("phantom_n_per_class = 6", "").replace("[data.prepare]\nsize_px = 16", ""))
    config, root = read_experiment(tiny_experiment, environ={})
    out = tmp_path / "run"
    with pytest.raises(OSError):
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert not out.exists()
