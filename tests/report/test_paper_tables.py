"""Paper tables: a tiny real `synthmed run` writes its TSTR / TRTR / mixed table beside the published figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from experiment.conftest import TINY  # the experiment tests' tiny phantom run (tests/ is on sys.path)
from synthmed.experiment.runner import run_experiment
from synthmed.experiment.schema import read_experiment
from synthmed.report import build_report
from synthmed.report.paper_tables import (
    PaperFigure,
    load_paper_figures,
    read_rows,
    seed_interval,
    wide_table,
    write_paper_tables,
)

ROOT = Path(__file__).resolve().parents[2]

# The experiment tests' tiny phantom run, named like the brain MRI arm (so the packaged Nafi et al. figure
# applies), at 32 px (VGG-19's five poolings need 32), with VGG-19 and 2 classifier seeds.
ARM_SETTINGS = [
    'name="brain_mri_vgg19"',
    "data.prepare.size_px=32",
    'evaluate.tstr_archs=["vgg19"]',
    "evaluate.tstr_seeds=[0, 1]",
    'evaluate.tstr_overrides={ min_steps = 2, batch_size = 8, save_classifiers = "none" }',
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny experiment run (every stage through the report)."""
    root = tmp_path_factory.mktemp("paper_arm")
    path = root / "experiments" / "arm.toml"
    path.parent.mkdir()
    path.write_text(TINY)
    config, data_root = read_experiment(path, profile="cpu", overrides=ARM_SETTINGS, environ={})
    run_experiment(config, data_root=data_root, run_dir=root / "run", profile="cpu", on_output=lambda _: None)
    return root / "run"


@pytest.mark.slow
def test_the_run_writes_csv_markdown_and_latex_from_the_evaluate_results(run_dir: Path) -> None:
    usefulness = json.loads((run_dir / "eval" / "metrics.json").read_text())["usefulness"]
    tables = run_dir / "tables"
    rows = read_rows(tables / "paper_comparison.csv")
    by_key = {(r["train_set"], r["metric"]): r for r in rows}
    results = usefulness["results"]["vgg19"]
    classes = list(results["synthetic"]["per_class"])
    assert set(by_key) == {
        (s, m) for s in ("real", "synthetic", "real+synthetic") for m in ("accuracy", "balanced_accuracy")
    } | {(s, f"f1:{c}") for s in ("real", "synthetic", "real+synthetic") for c in classes}
    for (train_set, metric), row in by_key.items():
        entry = results[train_set]
        summary = entry["per_class"][metric[3:]]["f1"] if metric.startswith("f1:") else entry[metric]
        assert row["mean"] == pytest.approx(summary["mean"])  # reused, not recomputed
        assert (row["boot_ci_low"], row["boot_ci_high"]) == pytest.approx((summary["ci_low"], summary["ci_high"]))
        per_seed = np.array([v for v in summary["per_seed"] if v is not None])
        if len(per_seed) == 2:
            half = student_t.ppf(0.975, 1) * per_seed.std(ddof=1) / np.sqrt(2)
            low, high = max(0, per_seed.mean() - half), min(1, per_seed.mean() + half)
            assert (row["seed_ci_low"], row["seed_ci_high"]) == pytest.approx((low, high))
        assert row["n_train"] == usefulness["train_images"][train_set]
    # Only the TSTR accuracy row sits beside the paper's 86.46% (the packaged figure for this arm).
    compared = [r for r in rows if r["paper_value"] is not None]
    assert [(r["train_set"], r["metric"]) for r in compared] == [("synthetic", "accuracy")]
    assert compared[0]["paper_value"] == pytest.approx(0.8646)
    assert compared[0]["run_minus_paper"] == pytest.approx(results["synthetic"]["accuracy"]["mean"] - 0.8646)

    text = (tables / "paper_comparison.md").read_text()
    assert "| vgg19 |" in text and "86.46 (Nafi et al. 2024)" in text and "Run settings: profile cpu; 32 px" in text
    assert len([line for line in text.splitlines() if line.startswith("| vgg19 |")]) == 3
    tex = (tables / "paper_comparison.tex").read_text()
    assert r"\begin{tabular}" in tex and r"vgg19\_bn" in tex  # LaTeX's special characters escaped
    assert "±" not in tex and tex.count(r"\\") == 1 + 3  # header + one row per training set
    html = (run_dir / "report.html").read_text()
    assert "Beside the paper" in html and "Nafi et al. 2024" in html

    # `synthmed report RUN` (the run folder, not RUN/eval) writes them again.
    shutil.rmtree(tables)
    build_report(run_dir, out_path=run_dir / "report.html")
    assert read_rows(tables / "paper_comparison.csv") == rows


@pytest.mark.slow
def test_a_figure_matches_its_arch_training_set_and_metric_only(run_dir: Path, tmp_path: Path) -> None:
    usefulness = json.loads((run_dir / "eval" / "metrics.json").read_text())["usefulness"]
    figures = [
        PaperFigure(
            paper="Someone 2020",
            experiments=("arm",),
            arch="vgg19",
            train_set="real",
            metric="balanced_accuracy",
            value=0.5,
        ),
        PaperFigure(paper="Other 2021", experiments=("another_arm",), arch="vgg19", value=0.9),
    ]
    paths = write_paper_tables(usefulness, tmp_path, experiment="arm", figures=figures)
    rows = read_rows(Path(paths["csv"]))
    compared = [r for r in rows if r["paper"] is not None]
    assert [(r["paper"], r["train_set"], r["metric"]) for r in compared] == [
        ("Someone 2020", "real", "balanced_accuracy")
    ]
    table = wide_table(rows)
    assert table["columns"][-2:] == ["Paper balanced acc.", "Run - paper (balanced acc., points)"]
    real_row = next(r for r in table["rows"] if r[2] == "train real (TRTR)")
    expected = 100 * (usefulness["results"]["vgg19"]["real"]["balanced_accuracy"]["mean"] - 0.5)
    assert real_row[-1] == f"{expected:+.1f}" and real_row[-2] == "50.00 (Someone 2020)"
    assert all(r[-1] == "—" for r in table["rows"] if r is not real_row)

    # The same figure stated for another class count is not set beside this run (an arm pointed at other data).
    n_classes = len(usefulness["results"]["vgg19"]["real"]["per_class"])
    elsewhere = [figures[0].model_copy(update={"n_classes": n_classes + 1})]
    paths = write_paper_tables(usefulness, tmp_path / "other", experiment="arm", figures=elsewhere)
    assert all(r["paper"] is None for r in read_rows(Path(paths["csv"])))
    assert f"reports vgg19 on {n_classes + 1} classes" in Path(paths["markdown"]).read_text()


def test_seed_interval_needs_two_seeds_and_widens_with_spread() -> None:
    assert seed_interval([0.8]) is None and seed_interval([0.8, None]) is None
    narrow, wide = seed_interval([0.80, 0.82, 0.81]), seed_interval([0.70, 0.92, 0.81])
    assert narrow is not None and wide is not None
    assert wide[0] < narrow[0] < 0.81 < narrow[1] < wide[1]
    assert seed_interval([0.99, 0.2]) == (0.0, 1.0)  # clipped to [0, 1]


def test_packaged_figures_sit_beside_experiment_files_that_train_that_arch() -> None:
    figures = load_paper_figures()
    assert figures, "paper_figures.toml holds no [[figure]] entries"
    arms = {}
    for path in (ROOT / "experiments").glob("*.toml"):
        config, _ = read_experiment(path, environ={})
        arms[config.name] = set(config.evaluate.options.get("tstr_archs", ()))
    for figure in figures:
        for name in figure.experiments:
            assert name in arms, f"{figure.paper}: no experiment file is named {name}"
            assert figure.arch in arms[name], f"{name} trains no {figure.arch} classifier"


def test_a_bad_figures_file_is_an_error_naming_the_fields(tmp_path: Path) -> None:
    path = tmp_path / "figures.toml"
    path.write_text('[[figure]]\npaper = "X"\nexperiments = ["a"]\narch = "vgg19"\nvalue = 86.46\n')
    with pytest.raises(ValueError, match="value as a fraction"):
        load_paper_figures(path)
    path.write_text("[[figure]\n")
    with pytest.raises(ValueError, match="cannot read the paper figures file"):
        load_paper_figures(path)


def test_tables_refuse_a_usefulness_section_without_results(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="re-run `synthmed evaluate`"):
        write_paper_tables({"status": "failed"}, tmp_path, experiment="arm", figures=[])
    assert pd.Series(list(tmp_path.iterdir())).empty


def test_a_seed_interval_clipped_at_0_or_100_is_written_out_not_as_a_half_width() -> None:
    from synthmed.report.paper_tables import format_cell

    row = {"mean": 0.373, "seed_ci_low": 0.0, "seed_ci_high": 0.873, "boot_ci_low": 0.2, "boot_ci_high": 0.5}
    assert format_cell(row) == "37.3 (0.0–87.3) [20.0, 50.0]"  # '37.3 ±43.7' would read as 37.3 - 43.7 < 0
    row |= {"seed_ci_low": 0.3, "seed_ci_high": 0.446}
    assert format_cell(row) == "37.3 ±7.3 [20.0, 50.0]"
