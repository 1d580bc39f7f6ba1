"""Run-folder helpers: atomic saves, folder swaps, checkpoint discovery, and a clean accelerate state after a run."""

from __future__ import annotations

import pytest
import torch

from synthmed.files import publish_folder
from synthmed.train.run_files import (
    TRAIN_STATE_NAME,
    append_stats,
    atomic_torch_save,
    latest_checkpoint,
    make_accelerator,
    prune_checkpoints,
    read_stats,
    releases_accelerator,
    reset_accelerate_state,
    step_dir,
)


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


def test_checkpoints_stats_and_pruning(tmp_path):
    assert latest_checkpoint(tmp_path) is None and read_stats(tmp_path) == []
    for step in (2, 4, 6):
        atomic_torch_save({"step": step}, step_dir(tmp_path, step) / TRAIN_STATE_NAME)
        append_stats(tmp_path, {"step": step, "loss": 1.0 / step})
    step_dir(tmp_path, 8).mkdir()  # a checkpoint folder without its state: incomplete
    assert latest_checkpoint(tmp_path).name == "step-000006"
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000006", "step-000008"]
    assert [s["step"] for s in read_stats(tmp_path)] == [2, 4, 6]
    assert torch.load(step_dir(tmp_path, 6) / TRAIN_STATE_NAME, weights_only=True) == {"step": 6}


def test_training_functions_leave_accelerate_free_for_other_settings():
    from accelerate import Accelerator

    @releases_accelerator
    def a_bf16_run():
        return make_accelerator("bf16").mixed_precision

    assert a_bf16_run() == "bf16"
    assert Accelerator(mixed_precision="no").mixed_precision == "no"  # not refused after our run
    reset_accelerate_state()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
            make_accelerator("fp16")
