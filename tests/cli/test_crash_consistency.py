"""SIGKILL a command at random moments, run the same command again: the result equals an uninterrupted run.

Each command runs in a forked child (a real process, really SIGKILLed, without paying torch's import
again); the kill lands a random 0-0.4 s after the command has visibly started writing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from cli import corpus
from synthmed.cli import main

FORK = multiprocessing.get_context("fork")


def _child(argv: list[str]) -> None:
    import sys

    sys.stdout = sys.stderr = open(os.devnull, "w")  # the child exits right after
    os._exit(main(argv))


def run(argv: list[str]) -> int:
    """Run the CLI to the end in a forked child; its exit code."""
    proc = FORK.Process(target=_child, args=(argv,))
    proc.start()
    proc.join(600)
    return int(proc.exitcode)


def run_killed(argv: list[str], *, started: Callable[[], bool], kills: int, seed: int, max_delay_s: float = 0.4) -> int:
    """Start `argv` and SIGKILL it `kills` times (random moments after `started()`), then run it to the end.

    Returns how many kills hit a running command (a command that finished first is not counted).
    """
    rng = random.Random(seed)
    hits = 0
    for _ in range(kills):
        proc = FORK.Process(target=_child, args=(argv,))
        proc.start()
        deadline = time.time() + 300
        while proc.is_alive() and not started() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, max_delay_s))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            hits += 1
        proc.join()
    assert run(argv) == 0, argv
    return hits


def same_weights(a: Path, b: Path) -> None:
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), f"{a.name}: {key} differs"


WALL_CLOCK = re.compile(rb'"(?:created_utc|elapsed_s|wall_s)": [^,\n}]+|in \d+(?:\.\d+)? s\b|\d{4}-\d\d-\d\dT[\d:+.]+')
WALL_CLOCK_KEYS = {"timings_s", "duration_s", "train_duration_s", "elapsed_s", "wall_s", "created_utc"}
RUN_KEYS = {"cached"}  # evaluate: whether the domain encoder was trained now or by the killed run (same weights)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in WALL_CLOCK_KEYS | RUN_KEYS}
    return [_without_timings(v) for v in value] if isinstance(value, list) else value


def _normalised(folder: Path, name: str) -> bytes:
    """A file's bytes with wall-clock times and the run's own folder path taken out."""
    data = (folder / name).read_bytes()
    if name.endswith(".json"):
        data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
    return WALL_CLOCK.sub(b"T", data).replace(str(folder).encode(), b"OUT")


def same_files(a: Path, b: Path) -> None:
    """The same file names with the same bytes, wall-clock times and the folders' own paths aside."""
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for name in files_a:
        assert _normalised(a, name) == _normalised(b, name), f"{name} differs"


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a killed run left inside or beside `folder`."""
    beside = [p for p in folder.parent.iterdir() if p.name.startswith((folder.name + ".", "." + folder.name))]
    inside = [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".partial")) or p.name.startswith(".tmp-")]
    return sorted(str(p) for p in beside + inside)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, prepared_dataset_factory) -> Path:
    return prepared_dataset_factory(tmp_path_factory.mktemp("data") / "ds", per_class={"train": 8, "val": 2, "test": 4})


def _checkpoints(run_dir: Path) -> int:
    return len(list((run_dir / "checkpoints").glob("step-*")))


def reference_and_killed(
    argv: Callable[[Path], list[str]],
    tmp_path: Path,
    *,
    started: Callable[[Path], bool],
    kills: int,
    seed: int,
    min_hits: int = 1,
    max_delay_s: float = 0.4,
) -> tuple[Path, Path]:
    """An uninterrupted run into tmp/reference, and a run into tmp/killed SIGKILLed `kills` times then completed."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run(argv(reference)) == 0
    hits = run_killed(argv(killed), started=lambda: started(killed), kills=kills, seed=seed, max_delay_s=max_delay_s)
    assert hits >= min_hits, "the kills came too late to interrupt the command; give it more work"
    assert not leftovers(killed), "a temporary file, partial folder or partial checkpoint was left behind"
    return reference, killed


def _partial(out: Path) -> bool:
    return out.with_name(out.name + ".partial").is_dir()


def test_pixel_training_killed_and_resumed_gives_bit_identical_weights(dataset, tmp_path):
    def argv(out: Path) -> list[str]:
        return corpus.train_argv(dataset, out, "--resume", "--checkpoint-every-steps", "3", steps=24)

    reference, killed = reference_and_killed(
        argv, tmp_path, started=lambda out: _checkpoints(out) >= 1, kills=3, seed=1, min_hits=2
    )
    for name in ("model/unet/diffusion_pytorch_model.safetensors", "checkpoints/step-000024/online.safetensors"):
        same_weights(reference / name, killed / name)
    events = [json.loads(line) for line in (killed / "stats.jsonl").read_text().splitlines()]
    assert sum(e.get("event") == "resume" for e in events) >= 1


def test_latent_training_killed_and_resumed_gives_bit_identical_weights(dataset, tmp_path):
    ae = tmp_path / "ae"
    assert (
        run(
            [
                "latent",
                "train-autoencoder",
                str(dataset),
                "--out",
                str(ae),
                "--preset",
                "tiny",
                "--max-steps",
                "2",
                "--batch-size",
                "4",
                "--checkpoint-every",
                "2",
            ]
        )
        == 0
    )

    def argv(out: Path) -> list[str]:
        return [
            "latent",
            "train",
            str(dataset),
            "--autoencoder",
            str(ae),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--metadata",
            "",
            "--max-steps",
            "30",
            "--batch-size",
            "4",
            "--checkpoint-every",
            "3",
            "--resume",
        ]

    reference, killed = reference_and_killed(
        argv, tmp_path, started=lambda out: _checkpoints(out) >= 1, kills=3, seed=2, min_hits=2
    )
    same_weights(reference / "model" / "model.safetensors", killed / "model" / "model.safetensors")


def test_sample_killed_then_run_again_writes_the_same_set(tmp_path):
    model = corpus.tiny_model(tmp_path / "model")

    def argv(out: Path) -> list[str]:
        return [
            "sample",
            str(model),
            "--out",
            str(out),
            "--n-per-class",
            "6",
            "--steps",
            "8",
            "--batch-size",
            "2",
            "--format",
            "png+dicom",
            "--sampler",
            "ddim",
        ]

    reference, killed = reference_and_killed(argv, tmp_path, started=_partial, kills=2, seed=3)
    first, again = (pd.read_csv(p / "manifest.csv") for p in (reference, killed))
    pd.testing.assert_frame_equal(first.drop(columns="created_utc"), again.drop(columns="created_utc"))
    for name in sorted(p.relative_to(killed) for p in killed.rglob("*.png")):  # DICOM UIDs are fresh by design
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name


def test_evaluate_killed_then_run_again_writes_the_same_metrics(dataset, tmp_path, monkeypatch):
    synthetic = corpus.synthetic_set(tmp_path / "synthetic", ["left", "right"], per_class=6)

    def argv(out: Path) -> list[str]:
        monkeypatch.setenv("SYNTHMED_CACHE", str(out) + "-cache")  # each run trains its own domain encoder
        return [
            "evaluate",
            "--real",
            str(dataset),
            "--synthetic",
            str(synthetic),
            "--out",
            str(out),
            "--skip",
            "usefulness,condition,explain",
            "--bootstrap",
            "10",
            "--encoder-epochs",
            "2",
        ]

    reference, killed = reference_and_killed(argv, tmp_path, started=Path.is_dir, kills=2, seed=4)
    same_files(reference, killed)


def test_prepare_killed_then_run_again_writes_the_same_dataset(tmp_path):
    source = tmp_path / "raw"
    for label in ("a", "b"):
        (source / label).mkdir(parents=True)
        for k in range(200):
            (source / label / f"p{k:03d}.png").write_bytes(corpus.png_bytes(48 + k % 5))

    def argv(out: Path) -> list[str]:
        return [
            "prepare",
            str(source),
            "--out",
            str(out),
            "--size",
            "16",
            "--workers",
            "1",
            "--overwrite",
        ]

    reference, killed = reference_and_killed(argv, tmp_path, started=_partial, kills=2, seed=5, max_delay_s=0.05)
    same_files(reference, killed)
