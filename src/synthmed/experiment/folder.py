"""Guard a run folder: refuse a foreign non-empty --out, and lock a run folder against a second `synthmed run`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"
STATE_NAME = "stages.json"
DESCRIPTION_NAME = "experiment.json"


def is_run_folder(run_dir: Path) -> bool:
    """True when `run_dir` was made by `synthmed run` (its stages.json, or its experiment.json describing a run)."""
    if (run_dir / STATE_NAME).is_file():
        return True
    try:
        described = json.loads((run_dir / DESCRIPTION_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(described, dict) and {"experiment", "stages", "run_dir"} <= set(described)


def check_run_folder(run_dir: Path) -> None:
    """Refuse an --out that is a file, or a non-empty folder that is not a `synthmed run` folder (nothing written)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--out {run_dir} is a file, not a folder; give a new or empty folder.")
    if not run_dir.is_dir() or is_run_folder(run_dir):
        return
    if any(child.name != LOCK_NAME for child in run_dir.iterdir()):
        raise FileExistsError(
            f"--out {run_dir} is not an empty folder and not a `synthmed run` folder (no {STATE_NAME} or run "
            f"{DESCRIPTION_NAME}); `synthmed run` would write over its files. Give a new or empty folder, or the "
            f"folder of an earlier run of this experiment to resume it."
        )


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on RUN/.lock while the body runs; another holder -> a clear error at once.

    flock locks belong to the open file: the OS releases them when the process ends, so the lock of a
    killed run never blocks the next one (the file itself may stay behind and is ignored).
    """
    path = Path(run_dir) / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole body
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(
                f"{run_dir} is in use by another `synthmed run` ({holder}); wait for it to finish, stop it, or "
                f"give another --out."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def resume_training(stage_dir: Path) -> bool:
    """Whether a training stage folder resumes: it holds a checkpoint. A folder without one (a run stopped before
    its first checkpoint) holds nothing to continue from, so it is removed and training starts over."""
    checkpoints = Path(stage_dir) / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        return True
    shutil.rmtree(stage_dir, ignore_errors=True)
    return False
