"""Every CLI command against damaged inputs: exit 2, one line naming the file and the fix, nothing left behind."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli import corpus
from cli.bad_cases import CASES
from synthmed.cli import main

PROGRESS_BAR = re.compile(r"[^\r\n|]*\|[^|\r\n]*\| *\d+/\d+ \[[^\]\r\n]*\]")  # tqdm shares stderr


@pytest.fixture(scope="module")
def base(tmp_path_factory, prepared_dataset_factory) -> dict:
    """Valid inputs every case damages a copy of: a prepared dataset, a model folder, a synthetic set."""
    root = tmp_path_factory.mktemp("base")
    return {
        "dataset": prepared_dataset_factory(root / "dataset", per_class={"train": 4, "val": 2, "test": 2}),
        "model": corpus.tiny_model(root / "model"),
        "synthetic": corpus.synthetic_set(root / "synthetic", ["left", "right"]),
    }


def tree(folder: Path | None) -> dict[str, str] | None:
    """Every file under `folder` (hidden ones included) with the hash of its bytes; None when absent."""
    if folder is None or not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def siblings(folder: Path | None) -> list[str]:
    return [] if folder is None or not folder.parent.exists() else sorted(p.name for p in folder.parent.iterdir())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, base, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHMED_CACHE", str(tmp_path / "cache"))
    argv, words, out = case.build(tmp_path, base)
    before, beside = tree(out), siblings(out)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]+", PROGRESS_BAR.sub("", err)) if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"synthmed {argv[0]}: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert tree(out) == before, "the failed command left files behind"
    assert siblings(out) == beside, "the failed command left files beside its output"


def test_debug_shows_the_traceback_and_plain_does_not(tmp_path):
    (tmp_path / "empty").mkdir()  # not a study folder; `study` imports no torch, so the two processes start fast
    cmd = [sys.executable, "-m", "synthmed.cli", "study", "analyze", str(tmp_path / "empty")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("synthmed study: error: ")
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, env=env, timeout=300)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr
