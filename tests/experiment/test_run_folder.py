"""`synthmed run`'s guards: a foreign --out is refused, a run folder is locked, and bad settings fail at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from synthmed.cli import main
from synthmed.experiment.folder import LOCK_NAME, locked
from synthmed.experiment.runner import check_inputs, run_experiment
from synthmed.experiment.schema import read_experiment


def test_a_non_empty_folder_that_is_no_run_folder_is_refused_before_anything_is_written(
    tiny_experiment: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "experiment.json").write_text('{"my": "notes"}')
    (out / "versions.json").write_text("mine")
    config, root = read_experiment(tiny_experiment, environ={})
    with pytest.raises(FileExistsError, match="is not an empty folder"):
        check_inputs(config, data_root=root, run_dir=out)  # what --dry-run calls
    with pytest.raises(FileExistsError, match="is not an empty folder"):
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert json.loads((out / "experiment.json").read_text()) == {"my": "notes"}
    assert (out / "versions.json").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == [
        "experiment.json",
        "versions.json",
    ]


def test_a_foreign_dataset_folder_in_a_run_folder_is_kept(tiny_experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "dataset").mkdir(parents=True)
    (out / "dataset" / "notes.txt").write_text("mine")
    (out / "experiment.json").write_text(json.dumps({"experiment": {}, "stages": [], "run_dir": str(out)}))
    config, root = read_experiment(tiny_experiment, environ={})
    with pytest.raises(FileExistsError, match="not a prepared dataset") as raised:
        run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
    assert "--overwrite" not in str(raised.value)
    assert (out / "dataset" / "notes.txt").read_text() == "mine"


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(
    tiny_experiment: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    config, root = read_experiment(tiny_experiment, environ={})
    with locked(out):  # as if another `synthmed run` were running there (flock: per open file, so in-process too)
        with pytest.raises(ValueError, match=r"in use by another `synthmed run` \(pid \d+ on host"):
            run_experiment(config, data_root=root, run_dir=out, on_output=lambda _: None)
        assert main(["run", str(tiny_experiment), "--out", str(out)]) == 2  # one line, exit 2 (no traceback)
        assert "in use by another" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # the refused run wrote nothing
    (out / LOCK_NAME).write_text("pid 99999999 on host gone\n")  # a lock file left by a killed run: not held
    with locked(out):
        assert "pid 99999999" not in (out / LOCK_NAME).read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluate.tstr_archs=['resnet5']", r"tstr_archs: unknown \['resnet5'\]; choose from"),
        ("train.preset='65'", r"preset '65': unknown; choose one of \['tiny', '32', '64'"),
        ("seed=-1", "seed: Input should be greater than or equal to 0"),
        ("seed=9223372036854775808", "seed: Input should be less than"),
        ("train.model.block_out_channels=[1,2]", r"block_out_channels \[1, 2\]: .* >= attention_head_dim 8"),
        ("train.model.norm_num_groups=3", "norm_num_groups=3 must divide"),
        ("train.model.attention_levels=[true]", "attention_levels has 1 entries"),
    ],
)
def test_settings_a_stage_would_refuse_are_refused_at_load(tiny_experiment: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_experiment(tiny_experiment, overrides=[override], environ={})


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only on a machine without a GPU")
def test_fp16_training_without_a_gpu_is_refused_by_the_dry_run_checks(tiny_experiment: Path, tmp_path: Path) -> None:
    config, root = read_experiment(tiny_experiment, overrides=["train.mixed_precision='fp16'"], environ={})
    with pytest.raises(ValueError, match="'fp16' needs a CUDA GPU"):
        check_inputs(config, data_root=root, run_dir=tmp_path / "run")


def test_a_disabled_sample_stage_needs_no_n_per_class(tiny_experiment: Path) -> None:
    text = tiny_experiment.read_text().replace("[sample]\nn_per_class = 3", "[sample]\nenabled = false")
    tiny_experiment.write_text(text)
    config, _ = read_experiment(tiny_experiment, environ={})
    assert not config.sample.enabled
    with pytest.raises(ValueError, match="n_per_class"):  # an enabled one still does
        read_experiment(tiny_experiment, overrides=["sample.enabled=true"], environ={})
