"""The one error handler: which exceptions are user errors, and how a missing package in evaluate is reported."""

from __future__ import annotations

import json
import pickle

import pytest

from synthmed.cli import main, user_error_message


def test_user_errors_become_one_line_with_the_fix():
    assert user_error_message(ValueError("bad\n  value")) == "bad value"
    message = user_error_message(pickle.UnpicklingError("invalid load key"))
    assert message.startswith("UnpicklingError: invalid load key") and "damaged" in message
    missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert "pip install 'synthmed[all]'" in user_error_message(missing)
    assert "choose another --out" in user_error_message(NotADirectoryError(20, "Not a directory", "/x/out"))


def test_bugs_are_not_user_errors():
    assert user_error_message(KeyError("label_idx")) is None
    assert user_error_message(TypeError("unsupported operand")) is None
    assert user_error_message(ImportError("cannot import name 'x' from 'synthmed.y'")) is None


def test_a_validation_error_is_one_line_per_field():
    from synthmed.sample.generate import SampleConfig

    with pytest.raises(ValueError) as caught:
        SampleConfig(model_dir="m", out_dir="o", n_per_class=0, batch_size=0)
    message = user_error_message(caught.value)
    assert "n_per_class: Input should be greater than or equal to 1" in message and "batch_size" in message
    assert "\n" not in message


def test_a_missing_package_fails_its_evaluation_part_with_exit_1(tiny_dataset, tmp_path, monkeypatch):
    """An ImportError inside a part is a failure (exit 1, recorded), never a quiet 'not available' with exit 0."""
    from synthmed.evaluate import sections

    def needs_a_package(**_):
        raise ModuleNotFoundError("No module named 'lime'", name="lime")

    monkeypatch.setattr(sections, "diversity_section", needs_a_package)
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "e"),
            "--skip",
            "fidelity,memorisation,usefulness,condition,explain",
        ]
    )
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert code == 1
    assert metrics["diversity"]["status"] == "failed" and "lime" in metrics["diversity"]["error"]
    assert metrics["status"]["failed_parts"] == ["diversity"]
