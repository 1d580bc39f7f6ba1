"""A real `synthmed train` process SIGKILLed mid-run resumes with --resume to the target step, nothing corrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from synthmed.models.unet import load_model_folder
from synthmed.train.checkpoint import complete_checkpoints, latest_checkpoint, load_checkpoint


def _cmd(dataset, run, *extra):
    return [
        sys.executable,
        "-m",
        "synthmed.cli",
        "train",
        str(dataset),
        "--out",
        str(run),
        "--preset",
        "tiny",
        "--max-steps",
        "120",
        "--batch-size",
        "4",
        "--checkpoint-every-steps",
        "3",
        "--mixed-precision",
        "no",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_then_resume(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cmd(tiny_dataset, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:  # kill once a few checkpoints exist
        if len(complete_checkpoints(run)) >= 1 and latest_checkpoint(run).name >= "step-000006":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; raise --max-steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run)
    assert killed_at is not None and killed_at.name < "step-000120"

    result = subprocess.run(_cmd(tiny_dataset, run, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    final = latest_checkpoint(run)
    assert final.name == "step-000120"
    online, state = load_checkpoint(final)
    assert state["step"] == 120 and len(online) > 10
    load_model_folder(run / "model")
    assert load_file(str(final / "model" / "model.safetensors"))
    assert not list((run / "checkpoints").glob(".tmp-*"))
    events = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
    resumed = [e for e in events if e.get("event") == "resume"]
    assert resumed and resumed[0]["step"] == int(killed_at.name.split("-")[1])
