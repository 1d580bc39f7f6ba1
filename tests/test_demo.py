"""The demo pipeline end to end with a tiny budget: every stage's files exist and hang together."""

import json

import pandas as pd
import pytest

from synthmed.cli import main
from synthmed.models.unet import is_model_folder


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--size",
            "32",
            "--n-per-class",
            "10",
            "--max-steps",
            "3",
            "--preset",
            "tiny",
            "--train-minutes",
            "2",
            "--samples-per-class",
            "4",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "HTML report" in printed and str(out) in printed
    assert "training         : Training ran its budget of 3 steps, fewer than the demo's" in printed
    assert "CUT SHORT" not in printed

    manifest = pd.read_csv(out / "samples" / "manifest.csv")
    assert len(manifest) == 4 * 4 and (manifest["synthetic"] == 1).all()
    assert manifest["seed"].nunique() == 4  # seeds 0..3 in every class
    assert is_model_folder(out / "run" / "model")
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert {"fidelity", "memorisation", "usefulness"} <= set(metrics)
    assert metrics["demo_training"] | {"verdict": ""} == {
        "steps_planned": 3,
        "steps_done": 3,
        "time_cap_min": 2.0,
        "cap_hit": False,
        "verdict": "",
        "status": "fair",  # fewer steps than the demo's budget: a quick look, not the demo's result
    }
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html

    # Running the demo again resumes: nothing is recomputed or refused, the same samples are kept.
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--size",
                "32",
                "--n-per-class",
                "10",
                "--max-steps",
                "3",
                "--preset",
                "tiny",
                "--train-minutes",
                "2",
                "--samples-per-class",
                "4",
                "--no-evaluate",
            ]
        )
        == 0
    )
    assert pd.read_csv(out / "samples" / "manifest.csv").equals(manifest)


def test_demo_time_cap_is_reported_and_a_rerun_resumes(tmp_path, capsys):
    from synthmed.demo import DemoConfig, run_demo

    out = tmp_path / "demo"
    settings = dict(out_dir=out, n_per_class=8, preset="tiny", samples_per_class=2, evaluate=False, train_steps=400)
    result = run_demo(DemoConfig(**settings, train_cap_minutes=0.001))
    assert result.cap_hit and 0 < result.training["steps_done"] < 400
    assert "time cap" in result.training["verdict"] and result.training["status"] == "poor"
    first = pd.read_csv(out / "samples" / "manifest.csv")

    # The summary printed by the CLI says so too (same folder: training is already past the cap).
    assert main(["demo", "--out", str(out), "--n-per-class", "8", "--preset", "tiny", "--samples-per-class", "2",
                 "--steps", "400", "--train-minutes", "0.001", "--no-evaluate"]) == 0  # fmt: skip
    assert "TRAINING CUT SHORT" in capsys.readouterr().out

    # A larger cap resumes training to the full step budget, and the samples are made again from the new model.
    done = result.training["steps_done"]
    (out / "eval").mkdir()  # stand-ins for an earlier evaluation of the old set
    (out / "report.html").write_text("report of the old samples")
    result = run_demo(DemoConfig(**settings | {"train_steps": done + 3}, train_cap_minutes=5))
    assert not result.cap_hit and result.training["steps_done"] == done + 3
    assert not (out / "report.html").exists() and not (out / "eval").exists()  # none describes the old set
    later = pd.read_csv(out / "samples" / "manifest.csv")
    assert len(later) == len(first)
    assert json.loads((out / "samples_made_by.json").read_text())["model_step"] == result.training["steps_done"]
