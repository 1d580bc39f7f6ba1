"""The shared run folder: old-format and changed-setting refusals, stats lines, a clean accelerate state."""

from __future__ import annotations

import json

import pytest
import torch

from synthmed.files import publish_folder
from synthmed.train.run_files import (
    append_stats,
    check_run_folder,
    make_accelerator,
    read_stats,
    reset_accelerate_state,
)

RESUMABLE = frozenset({"max_steps"})


def test_publish_folder_keeps_the_old_one_when_writing_fails(tmp_path):
    target = tmp_path / "model"
    publish_folder(target, lambda tmp: (tmp / "w.txt").write_text("v1"))

    def broken(tmp):
        (tmp / "w.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_folder(target, broken)
    assert (target / "w.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_stats_lines(tmp_path):
    assert read_stats(tmp_path) == []
    with open(tmp_path / "stats.jsonl", "a") as handle:
        for step in (2, 4):
            append_stats(handle, {"step": step, "loss": 1.0 / step})
    assert [s["step"] for s in read_stats(tmp_path)] == [2, 4]


def test_run_folder_checks(tmp_path):
    config = {"max_steps": 4, "lr": 0.1}
    check_run_folder(tmp_path, config, resume=False, resumable=RESUMABLE)  # empty: fine
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileExistsError, match="--resume"):
        check_run_folder(tmp_path, config, resume=False, resumable=RESUMABLE)
    check_run_folder(tmp_path, {**config, "max_steps": 8}, resume=True, resumable=RESUMABLE)  # budgets may grow
    with pytest.raises(ValueError, match="lr 0.1 .now 0.5.*new --out"):
        check_run_folder(tmp_path, {**config, "lr": 0.5}, resume=True, resumable=RESUMABLE)
    # Run folders of the older per-family loops name what to do.
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="older synthmed.*still samples.*new --out"):
        check_run_folder(old, config, resume=True, resumable=RESUMABLE)
    old_ae = tmp_path / "old_ae"
    old_ae.mkdir()
    (old_ae / "config.json").write_text(json.dumps({"format": "synthmed-autoencoder-v1"}))
    with pytest.raises(ValueError, match="--autoencoder"):
        check_run_folder(old_ae, config, resume=True, resumable=RESUMABLE)


def test_training_runs_leave_accelerate_free_for_other_settings():
    from accelerate import Accelerator

    assert make_accelerator("bf16").mixed_precision == "bf16"
    reset_accelerate_state()
    assert Accelerator(mixed_precision="no").mixed_precision == "no"  # not refused after our run
    reset_accelerate_state()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
            make_accelerator("fp16")
    with pytest.raises(ValueError, match="pip install"):
        make_accelerator("no", log_with="wandb") if not _installed("wandb") else _skip()


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _skip():
    pytest.skip("wandb is installed here")
