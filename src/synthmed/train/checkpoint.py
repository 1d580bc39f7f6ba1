"""Crash-safe training checkpoints: written into a temp folder, fsynced, renamed, then `latest` updated.

    RUN/checkpoints/step-000500/model/        EMA weights + config (the family's model folder: enough to sample)
    RUN/checkpoints/step-000500/online.safetensors   the raw (non-EMA) trainable weights being optimised
    RUN/checkpoints/step-000500/train_state.pt       optimizer, EMA state, step, elapsed time, RNG state
    RUN/checkpoints/latest                    text: the name of the newest complete checkpoint

A process killed (even SIGKILL) at any moment leaves either the previous checkpoint set or the new
one, never a half-written folder under a `step-*` name; leftovers named `.tmp-*` are removed on resume.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from synthmed.files import atomic_write_text, fsync_path, swap_folder
from synthmed.models.interface import TrainableModel, trainable_state
from synthmed.models.weights import load_safetensors, load_torch_file
from synthmed.train.steps import ema_weights

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE_NAME = "train_state.pt"
ONLINE_NAME = "online.safetensors"


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    model: TrainableModel,
    ema,
    optimizer: torch.optim.Optimizer,
    state: dict,
    keep: int,
) -> Path:
    """Write checkpoint `step-XXXXXX` atomically, point `latest` at it, and keep the newest `keep`."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-step-{step:06d}-", dir=root))
    # Write the inference folder from the EMA weights (swap them in, save, swap back).
    with ema_weights(ema, model.trainable_parameters()):
        model.save(tmp / "model", step=step)
    fsync_path(tmp / "model")
    # Write the raw weights and the resumable state.
    save_file(trainable_state(model.network), str(tmp / ONLINE_NAME))
    payload = {"step": step, "optimizer": optimizer.state_dict(), "ema": ema.state_dict() if ema else None, **state}
    with open(tmp / STATE_NAME, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_path(tmp / ONLINE_NAME)
    fsync_path(tmp)
    # Publish: rename is atomic; then the pointer; then prune.
    swap_folder(tmp, final)
    atomic_write_text(root / LATEST, final.name + "\n")
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and _is_complete(p)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `latest` names, else the newest complete one, else None."""
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if named.is_dir() and _is_complete(named):
            return named
        logger.warning(
            "%s names %s which is missing or incomplete; using the newest complete checkpoint", pointer, named.name
        )
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Delete `.tmp-*` folders left by a process killed while writing a checkpoint."""
    root = Path(run_dir) / CHECKPOINTS
    for leftover in root.glob(".tmp-*") if root.is_dir() else []:
        logger.info("removing partial checkpoint %s", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(raw online weights, train state) of one checkpoint folder."""
    fix = f"delete the damaged checkpoint folder {path} and resume from the one before it"
    online = load_safetensors(path / ONLINE_NAME, fix=fix)
    state = load_torch_file(path / STATE_NAME, fix=fix)
    return online, state


def _is_complete(path: Path) -> bool:
    return (path / STATE_NAME).is_file() and (path / ONLINE_NAME).is_file() and (path / "model").is_dir()
