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

    manifest = pd.read_csv(out / "samples" / "manifest.csv")
    assert len(manifest) == 4 * 4 and (manifest["synthetic"] == 1).all()
    assert manifest["seed"].nunique() == 4  # seeds 0..3 in every class
    assert is_model_folder(out / "run" / "model")
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert {"fidelity", "memorisation", "usefulness"} <= set(metrics)
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
