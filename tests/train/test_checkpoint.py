"""Checkpoint publishing, pruning and recovery from partial writes."""

from __future__ import annotations

import torch
from diffusers.training_utils import EMAModel

from synthmed.models.config import preset_config
from synthmed.models.pixel import PixelDiffusion
from synthmed.train.checkpoint import (
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)


def _save(run, step, keep=2):
    config = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2)
    model = PixelDiffusion(config)
    optimizer = torch.optim.AdamW(model.trainable_parameters())
    ema = EMAModel(model.trainable_parameters())
    return save_checkpoint(
        run,
        step=step,
        model=model,
        ema=ema,
        optimizer=optimizer,
        state={"rng": torch.Generator().manual_seed(1).get_state(), "elapsed_s": 1.5},
        keep=keep,
    )


def test_keep_latest_and_prune(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000002", "step-000003"]
    assert latest_checkpoint(tmp_path).name == "step-000003"
    online, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 3 and state["elapsed_s"] == 1.5 and "conv_in.weight" in online


def test_partial_and_dangling_states_recover(tmp_path):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    # A crash while writing step 3 leaves a temp folder; `latest` still names step 2.
    partial = tmp_path / "checkpoints" / ".tmp-step-000003-abc"
    (partial / "model").mkdir(parents=True)
    (partial / "train_state.pt").write_bytes(b"half")
    assert latest_checkpoint(tmp_path).name == "step-000002"
    remove_partial_checkpoints(tmp_path)
    assert not partial.exists()
    # A pointer naming a vanished folder falls back to the newest complete one.
    (tmp_path / "checkpoints" / "latest").write_text("step-000009\n")
    assert latest_checkpoint(tmp_path).name == "step-000002"
    assert latest_checkpoint(tmp_path / "nothing") is None
