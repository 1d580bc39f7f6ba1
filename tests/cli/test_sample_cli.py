"""`synthmed sample`: the default sampler fits the model's objective; --classes takes spaces or commas; the batch
size flags default per device and are recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import corpus
from synthmed.cli import build_parser, main
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


def test_batch_size_flags_default_to_the_device_and_a_given_value_is_used(tmp_path: Path) -> None:
    argv = ["sample", "RUN", "--out", "OUT", "--n-per-class", "1"]
    parsed = build_parser().parse_args(argv)
    assert parsed.batch_size is None and parsed.model_batch_size is None  # resolved per device by sample_images
    parsed = build_parser().parse_args([*argv, "--model-batch-size", "8", "--batch-size", "3"])
    assert (parsed.model_batch_size, parsed.batch_size) == (8, 3)

    model = corpus.tiny_model(tmp_path / "model")
    out = tmp_path / "set"
    flags = ["--n-per-class", "2", "--steps", "2", "--device", "cpu", "--model-batch-size", "4", "--batch-size", "3"]
    assert main(["sample", str(model), "--out", str(out), *flags]) == 0
    drawn = load_image_set(out)
    assert set(drawn["model_batch_size"]) == {4} and set(drawn["batch_size"]) == {3}


def test_model_batch_size_is_refused_for_a_latent_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from synthmed.latent.model import CONFIG_NAME, FORMAT

    run = tmp_path / "latent"
    (run / "model").mkdir(parents=True)
    (run / "model" / CONFIG_NAME).write_text(json.dumps({"format": FORMAT}))
    argv = ["sample", str(run), "--out", str(tmp_path / "set"), "--n-per-class", "1", "--model-batch-size", "8"]
    assert main(argv) == 2
    assert "--model-batch-size is for pixel models" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()
