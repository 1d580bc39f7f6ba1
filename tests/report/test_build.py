"""The HTML report: self-contained, escaped, generic for unknown keys, and clear about bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthmed.cli import main
from synthmed.report import build_report

EVIL = "<script>alert(1)</script>"


def test_report_is_self_contained_and_escapes_text(tiny_dataset: Path, tmp_path: Path, make_eval_dir) -> None:
    eval_dir = make_eval_dir(tmp_path, tiny_dataset)
    (tmp_path / "secret.png").write_bytes(b"not for the report")
    path = build_report(eval_dir, title=f"Report {EVIL}")
    assert path == eval_dir / "report.html"
    html = path.read_text()
    # Self-contained: no network references; every image is an inline data URI.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    sources = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html)
    assert len(sources) >= 5  # the usefulness figure + real and synthetic grids for 2 classes
    assert all(src.startswith("data:image/") for src in sources)
    assert "Content-Security-Policy" in html
    # Escaped: the label and title cannot run as script.
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Figures: embedded, missing and outside-the-folder ones are explained, not fatal.
    assert "figure file missing: usefulness/missing.png" in html
    assert "outside the evaluation folder" in html and "bm90IGZvciB0aGUgcmVwb3J0" not in html
    # Sections: known ones titled and colour-coded, unknown ones rendered generically.
    for text in (
        "Fidelity",
        "Memorisation and privacy",
        "Usefulness",
        "Brand new section",
        "alpha",
        "beta",
        "Samples: real and synthetic",
        "left",
        "right",
        "2.9, 3.5",
    ):
        assert text in html
    assert 'class="card verdict poor"' in html and 'class="card verdict good"' in html


def test_run_folder_out_path_and_metrics_copy(tiny_dataset: Path, tmp_path: Path, make_eval_dir) -> None:
    eval_dir = make_eval_dir(tmp_path, tiny_dataset)
    out = tmp_path / "shared" / "report.html"
    path = build_report(eval_dir.parent, out_path=out)
    assert path == out and out.is_file()
    assert json.loads((out.parent / "metrics.json").read_text()) == json.loads((eval_dir / "metrics.json").read_text())
    assert (out.stat().st_mode & 0o777) == 0o644
    other = tmp_path / "other_eval"
    other.mkdir()
    (other / "metrics.json").write_text('{"inputs": {}}')  # another evaluation's numbers
    with pytest.raises(FileExistsError, match="another evaluation"):
        build_report(eval_dir.parent, out_path=other / "report.html")
    assert (other / "metrics.json").read_text() == '{"inputs": {}}' and not (other / "report.html").exists()


def test_study_json_adds_a_reader_study_section(tiny_dataset: Path, tmp_path: Path, make_eval_dir) -> None:
    eval_dir = make_eval_dir(tmp_path, tiny_dataset)
    (eval_dir / "study.json").write_text(
        json.dumps(
            {
                "verdict": "Readers could not tell real from synthetic.",
                "readers": 2,
                "accuracy": {"value": 0.52, "ci95": [0.4, 0.64]},
                "kappa": {"cohen": 0.1},
            }
        )
    )
    html = build_report(eval_dir).read_text()
    assert "Reader study" in html and "Readers could not tell real from synthetic." in html
    assert "0.52 [0.4, 0.64]" in html


def test_missing_inputs_still_render_with_a_note(tmp_path: Path) -> None:
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"inputs": {"real_dataset": "/nowhere"}, "fidelity": {}}))
    html = build_report(eval_dir).read_text()
    assert "Sample grids are not shown" in html
    assert "No verdict recorded" in html


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="synthmed evaluate"):
        build_report(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_cli_writes_the_report(tiny_dataset: Path, tmp_path: Path, capsys, make_eval_dir) -> None:
    eval_dir = make_eval_dir(tmp_path, tiny_dataset)
    out = tmp_path / "r.html"
    assert main(["report", str(eval_dir), "--out", str(out), "--title", "CLI run"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "CLI run" in out.read_text()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "No metrics.json" in capsys.readouterr().err


def test_report_carries_no_absolute_paths(tiny_dataset: Path, tmp_path: Path, make_eval_dir) -> None:
    """The report is the file people share: no operator folders (absolute paths) in it; metrics.json keeps them."""
    eval_dir = make_eval_dir(tmp_path, tiny_dataset)
    html = build_report(eval_dir).read_text()
    assert str(tmp_path) not in html and str(tiny_dataset) not in html
    assert str(tmp_path) in (eval_dir / "metrics.json").read_text()  # machines still find the inputs
