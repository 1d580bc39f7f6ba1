"""The run folder every family shares: config.json, stats.jsonl, log.txt, trackers, and old-format checks.

RUN/config.json       the family's run config (a LoopConfig subclass); resume refuses changed trajectories
RUN/stats.jsonl       one JSON line per logged window ("loss", "lr", ...) and per start/resume/end event
RUN/log.txt           the synthmed log of every session
RUN/checkpoints/      crash-safe checkpoints (synthmed.train.checkpoint)
RUN/model/            the published model folder (EMA weights) of the family
RUN/grids/            preview grids (families that sample)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

CONFIG_NAME = "config.json"
STATS_NAME = "stats.jsonl"
LOG_NAME = "log.txt"
MODEL_DIR = "model"
OLD_RUN_FILES = {"run.json": "synthmed latent train", "finetune.json": "synthmed finetune"}


def append_stats(handle, record: dict) -> None:
    """Write one JSON line to an open stats.jsonl (flushed, so a crash keeps earlier lines)."""
    if handle is not None:
        handle.write(json.dumps(record, sort_keys=True, default=float) + "\n")
        handle.flush()


def read_stats(run_dir: str | Path) -> list[dict]:
    """All records of `run_dir/stats.jsonl` (empty when there is none)."""
    path = Path(run_dir) / STATS_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_run_folder(run_dir: Path, config_dict: dict, *, resume: bool, resumable: frozenset[str]) -> None:
    """Refuse to start over an existing run, to resume an old-format one, or to resume with other settings."""
    for name, command in OLD_RUN_FILES.items():
        if (run_dir / name).is_file() and not (run_dir / CONFIG_NAME).is_file():
            raise ValueError(
                f"{run_dir} is a `{command}` run from an older synthmed ({name}); this version cannot resume "
                f"its checkpoints. Its model still samples as it is; to train further start a new --out folder."
            )
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return
    if not resume:
        raise FileExistsError(
            f"{run_dir} already holds a training run; pass --resume to continue it or choose a new --out folder."
        )
    stored = json.loads(path.read_text())
    if "format" in stored:  # an old autoencoder folder: its config.json is the model's
        raise ValueError(
            f"{run_dir} is an autoencoder folder from an older synthmed; it still loads with --autoencoder, "
            f"but this version cannot resume its training: start a new --out folder."
        )
    changed = sorted(
        k for k in set(stored) | set(config_dict) if k not in resumable and stored.get(k) != config_dict.get(k)
    )
    if changed:
        details = "; ".join(f"{k} {stored.get(k)!r} (now {config_dict.get(k)!r})" for k in changed)
        raise ValueError(
            f"{run_dir} was trained with {details}: a resumed run keeps the settings that shape training "
            f"(only {sorted(resumable)} may change). Pass the run's values, or train into a new --out folder."
        )


def attach_log_file(path: Path) -> logging.Handler:
    """Copy synthmed's log records (INFO and up) into `path`; remove the handler when the run ends."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("synthmed")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide state (so the next Accelerator may choose its own mixed precision)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def make_accelerator(mixed_precision: str, *, log_with: str = "none", project_dir: Path | None = None):
    """An accelerate Accelerator for one training run in this process, with an optional metrics tracker.

    accelerate keeps a process-wide state that refuses a second mixed-precision setting; runs
    started one after another in one process (tests, notebooks) each get their own setting.
    """
    import importlib.util

    from accelerate import Accelerator

    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 (CPU or GPU) or no.")
    if log_with != "none" and importlib.util.find_spec(log_with) is None:
        raise ValueError(f"--log-with {log_with} needs the {log_with} package: pip install {log_with}, or drop it.")
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        reset_accelerate_state()
    from synthmed.models.device import launched_without_gpu

    return Accelerator(
        cpu=launched_without_gpu(),
        mixed_precision=mixed_precision,
        log_with=None if log_with == "none" else log_with,
        project_dir=None if project_dir is None else str(project_dir),
    )
