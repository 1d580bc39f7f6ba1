"""`train --resume` keeps the run's dataset and the settings that shape training (cold-test finding: they were
silently ignored or replaced)."""

from __future__ import annotations

import pytest

from cli import corpus
from synthmed.cli import main


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Training in this process sets accelerate's process-wide state (precision); later tests need it unset."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


def test_resume_refuses_another_dataset_or_trajectory_setting(prepared_dataset_factory, tmp_path, capsys):
    data = prepared_dataset_factory(tmp_path / "a", per_class={"train": 4, "val": 1})
    other = prepared_dataset_factory(tmp_path / "b", per_class={"train": 4, "val": 1}, seed=5)
    run = tmp_path / "run"
    assert main(corpus.train_argv(data, run, "--checkpoint-every-steps", "1")) == 0
    capsys.readouterr()
    assert main(corpus.train_argv(other, run, "--resume")) == 2
    assert "dataset" in capsys.readouterr().err
    assert main(corpus.train_argv(data, run, "--resume", "--seed", "7", "--lr", "0.5")) == 2
    err = capsys.readouterr().err
    assert "seed" in err and "lr" in err and "new --out" in err
    assert main(corpus.train_argv(data, run, "--resume", steps=3)) == 0  # a larger budget is fine
