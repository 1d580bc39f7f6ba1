"""Bad flags of `synthmed sample` and `synthmed report` end in one clear line and exit 2, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthmed.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "banana"], "device 'banana' is not a device"),
        (["--seed-start", str(2**63)], "seed_start"),
        (["--seed-start", "-1"], "seed_start"),
        (["--modality", "mr"], "modality"),
        (["--modality", "TOO LONG FOR A CS VALUE"], "modality"),
        (["--classes", ""], "names no class"),
    ],
)
def test_bad_sample_flags_exit_2_with_the_flag_named(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sample", str(tmp_path / "model"), "--out", str(tmp_path / "set"), "--n-per-class", "1"]
    assert main([*argv, "--sampler", "ddim", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "set").exists()


def test_sample_of_an_experiment_run_without_training_names_the_missing_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "stages.json").write_text(json.dumps({"prepare": {"fingerprint": "x"}}))
    assert main(["sample", str(run), "--out", str(tmp_path / "set"), "--n-per-class", "1"]) == 2
    assert "train stage has not run yet" in capsys.readouterr().err


def test_report_refuses_an_out_that_is_an_input_or_not_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    metrics = run / "eval" / "metrics.json"
    metrics.write_text('{"fidelity": {}}')
    (run / "eval" / "figure.png").write_bytes(b"png")
    (run / "eval" / "other.html").write_text("<p>kept</p>")
    for out in (metrics, run / "eval" / "figure.png", run / "eval" / "other.html", run / "eval", tmp_path / "r.json"):
        assert main(["report", str(run), "--out", str(out)]) == 2, out
        assert "--out" in capsys.readouterr().err
    assert metrics.read_text() == '{"fidelity": {}}' and (run / "eval" / "figure.png").read_bytes() == b"png"
    assert (run / "eval" / "other.html").read_text() == "<p>kept</p>" and not (tmp_path / "r.json").exists()
