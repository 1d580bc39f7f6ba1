"""`synthmed study ...` runs where torch and the diffusion stack are not installed (a `synthmed[study]` install)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli import corpus

BLOCKED = (
    "torch",
    "torchvision",
    "diffusers",
    "accelerate",
    "transformers",
    "peft",
    "safetensors",
    "pydicom",
    "nibabel",
    "matplotlib",
    "lime",
    "pytorch_grad_cam",
    "torchmetrics",
    "torchxrayvision",
)

# Runs the CLI with an import hook that makes every package above look uninstalled.
SCRIPT = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
from synthmed.cli import main
code = main(sys.argv[2:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
sys.exit(code)
"""


def _synthmed(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHMED_STUDY_ADMIN_PASSWORD": "a-long-admin-password-1"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(BLOCKED), *argv], capture_output=True, text=True, env=env, timeout=300
    )


def test_study_create_and_analyze_without_torch(tmp_path: Path, prepared_dataset_factory):
    real = prepared_dataset_factory(tmp_path / "real", per_class={"train": 4, "val": 1, "test": 1})
    synthetic = corpus.synthetic_set(tmp_path / "synthetic", ["left", "right"])
    study = tmp_path / "study"
    created = _synthmed(
        "study",
        "create",
        "--real",
        str(real),
        "--synthetic",
        str(synthetic),
        "--out",
        str(study),
        "--cases",
        "6",
        "--reader",
        "ann",
    )
    assert created.returncode == 0, created.stderr[-2000:]
    assert "invite ann" in created.stdout
    analyzed = _synthmed("study", "analyze", str(study), "--json", str(tmp_path / "study.json"))
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    assert "pooled" in json.loads((tmp_path / "study.json").read_text())


def test_the_ml_commands_say_what_to_install_without_torch(tmp_path: Path):
    result = _synthmed("sample", str(tmp_path), "--out", str(tmp_path / "o"), "--n-per-class", "1")
    assert result.returncode == 2
    assert "synthmed sample: error:" in result.stderr and "install" in result.stderr
    assert "Traceback" not in result.stderr
