"""`synthmed sample`: the default sampler fits the model's objective; --classes takes spaces or commas."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import corpus
from synthmed.cli import main
from synthmed.cli.sample import class_list
from synthmed.data.manifest import load_image_set


def test_classes_may_be_space_or_comma_separated() -> None:
    assert class_list(["a", "b"]) == class_list(["a,b"]) == class_list(["a,", "b"]) == ["a", "b"]
    assert class_list(None) is None
    for empty in ([","], [""], [" , "]):  # given but naming nothing: an error, not "all classes"
        with pytest.raises(ValueError, match="names no class"):
            class_list(empty)


def test_a_flow_matching_model_samples_with_a_flow_sampler_by_default(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(corpus.train_argv(tiny_dataset, run, "--objective", "flow_matching")) == 0
    out = tmp_path / "set"
    argv = ["sample", str(run), "--out", str(out), "--n-per-class", "1", "--steps", "2", "--classes", "left,right"]
    assert main(argv) == 0
    drawn = load_image_set(out)
    assert set(drawn["sampler"]) == {"flow_euler"} and sorted(drawn["label"]) == ["left", "right"]
