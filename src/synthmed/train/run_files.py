"""Run-folder helpers of the latent and fine-tuning loops - atomic torch saves, step folders, stats.jsonl."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from synthmed.files import atomic_write

CHECKPOINTS_DIR = "checkpoints"
STATS_NAME = "stats.jsonl"
TRAIN_STATE_NAME = "train_state.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file beside `path`, fsync, then rename over `path` (no half-written files)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def append_stats(run_dir: str | Path, record: dict) -> None:
    """Append one JSON line to `run_dir/stats.jsonl` (flushed, so a crash keeps earlier lines)."""
    with open(Path(run_dir) / STATS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=float) + "\n")
        handle.flush()


def read_stats(run_dir: str | Path) -> list[dict]:
    """All records of `run_dir/stats.jsonl` (empty when there is none)."""
    path = Path(run_dir) / STATS_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_dir(run_dir: str | Path, step: int) -> Path:
    """`run_dir/checkpoints/step-000123` (the pixel model's naming)."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder (one holding train_state.pt), or None."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / TRAIN_STATE_NAME).is_file())
    return done[-1] if done else None


def prune_checkpoints(run_dir: str | Path, *, keep: int) -> None:
    """Delete all but the newest `keep` checkpoint folders."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    folders = sorted(root.glob("step-*")) if root.is_dir() else []
    for old in folders[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide state (so the next Accelerator may choose its own mixed precision)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def releases_accelerator(func: Callable) -> Callable:
    """Decorator: reset accelerate's process-wide state when a training function returns or fails.

    Leaves the process as it found it, so a later `Accelerator(mixed_precision=...)` elsewhere
    (another stage, another test) is not refused because this run used another setting.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            reset_accelerate_state()

    return wrapper


def make_accelerator(mixed_precision: str):
    """An accelerate Accelerator for one training run in this process.

    accelerate keeps a process-wide state that refuses a second mixed-precision setting; runs
    started one after another in one process (tests, notebooks) each get their own setting.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 (CPU or GPU) or no.")
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())
