"""From a tiny prepared dataset and a synthetic set to `synthmed evaluate` and `synthmed report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from synthmed.cli import main


@pytest.mark.slow
def test_evaluate_then_report(tiny_dataset: Path, tmp_path: Path) -> None:
    # A "synthetic" set: the real test images relabelled as an image set with synthetic=1.
    frame = pd.read_csv(tiny_dataset / "manifest.csv")
    synthetic = frame[frame["split"] == "test"][["image_id", "path", "label"]].assign(synthetic=1)
    synthetic["path"] = [str((tiny_dataset / p).resolve()) for p in synthetic["path"]]
    synth_dir = tmp_path / "synthetic"
    synth_dir.mkdir()
    synthetic.to_csv(synth_dir / "manifest.csv", index=False)

    run_dir = tmp_path / "run"
    code = main(
        [
            "evaluate",
            "--real",
            str(tiny_dataset),
            "--synthetic",
            str(synth_dir),
            "--out",
            str(run_dir / "eval"),
            "--tstr-epochs",
            "2",
            "--tstr-seeds",
            "0",
            "--encoder-epochs",
            "1",
            "--bootstrap",
            "5",
            "--explain-images",
            "2",
            "--lime-samples",
            "20",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    for key in ("usefulness", "condition_fidelity", "explanations"):
        assert metrics[key].get("verdict"), (key, metrics[key])

    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "eval" / "report.html").read_text()
    for title in ("Fidelity", "Memorisation and privacy", "Usefulness", "Condition fidelity", "Explanations"):
        assert title in html
    assert "usefulness/tstr.png" not in re.findall(r'src="([^"]+)"', html)  # embedded, not linked
    assert all(src.startswith("data:image/") for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', html))
