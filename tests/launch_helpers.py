"""Run a command as N CPU processes with `accelerate launch` (torchrun underneath, gloo), as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    """A TCP port nobody listens on now (for the rendezvous of one launch)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(args: list[str], *, processes: int = 2, timeout_s: float = 240) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes N ARGS` on CPU only; raises with its output when it fails.

    `--multi_gpu` picks accelerate's torchrun launcher (`--cpu` would start a single process); with no GPU
    visible, synthmed joins the processes over gloo. One torch thread each: the machine may have 2 cores.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{output}")
    return done
