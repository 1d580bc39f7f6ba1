"""Results beside the papers': a run's TSTR / TRTR / mixed table next to the published figure (CSV, MD, LaTeX)."""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.stats import t as student_t

from synthmed.evaluate.tstr_outputs import CONDITION_LABELS, tex_escape
from synthmed.files import atomic_write_bytes, atomic_write_text, read_json

TABLES_DIR = "tables"
STEM = "paper_comparison"
TRAIN_SET_ORDER = ("synthetic", "real", "real+synthetic")  # TSTR first: the papers' figure
METRIC_LABELS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced acc.", "macro_f1": "Macro F1"}
TABLE_METRICS = ("accuracy", "balanced_accuracy")  # then F1 per class
CSV_COLUMNS = [
    "experiment",
    "arch",
    "weights",
    "train_set",
    "train_set_label",
    "metric",
    "mean",
    "seed_ci_low",
    "seed_ci_high",
    "boot_ci_low",
    "boot_ci_high",
    "n_seeds",
    "per_seed",
    "n_train",
    "n_test",
    "paper",
    "paper_value",
    "run_minus_paper",
]


class PaperFigure(BaseModel):
    """One published number: which experiments it sits beside and which row of their table it describes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: str = Field(min_length=1)
    experiments: tuple[str, ...] = Field(min_length=1, description="experiment names (the files' `name`)")
    domain: str = ""
    arch: str = Field(min_length=1)
    train_set: Literal["synthetic", "real", "real+synthetic"] = "synthetic"
    metric: Literal["accuracy", "balanced_accuracy", "macro_f1"] = "accuracy"
    value: float = Field(ge=0, le=1, description="a fraction: 86.46% is 0.8646")
    tested_on: str = "real test images"
    n_classes: int | None = Field(default=None, ge=2, description="the paper's class count: other runs get no figure")


def load_paper_figures(path: Path | None = None) -> list[PaperFigure]:
    """The [[figure]] entries of `path` (default: the packaged paper_figures.toml), validated."""
    try:
        if path is None:
            text = resources.files("synthmed.report").joinpath("paper_figures.toml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read the paper figures file {path or 'paper_figures.toml'}: {exc}") from exc
    try:
        return [PaperFigure(**entry) for entry in raw.get("figure", [])]
    except ValidationError as exc:
        raise ValueError(
            f"{path or 'paper_figures.toml'}: a [[figure]] entry is invalid (fields: paper, experiments, arch, "
            f"train_set, metric, value as a fraction):\n{exc}"
        ) from exc


def figures_for(experiment: str, figures: list[PaperFigure]) -> list[PaperFigure]:
    """The published figures that sit beside `experiment`."""
    return [f for f in figures if experiment in f.experiments]


def seed_interval(per_seed: list[float | None]) -> tuple[float, float] | None:
    """95% Student-t interval of the mean over seeds (clipped to [0, 1]); None with fewer than two seeds."""
    values = [v for v in per_seed if v is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(student_t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return max(0.0, mean - half), min(1.0, mean + half)


def _weights(usefulness: dict, arch: str) -> str:
    classifiers = (usefulness.get("rests_on") or {}).get("classifiers") or []
    return next((str(c["weights"]) for c in classifiers if c.get("arch") == arch), "")


def comparison_rows(usefulness: dict, *, experiment: str, figures: list[PaperFigure]) -> list[dict[str, Any]]:
    """Long-format rows (one per arch, training set and metric) from the evaluate stage's usefulness section.

    Metrics are those evaluate computed (accuracy, balanced accuracy, per-class F1, with their bootstrap
    intervals over test images); this adds the interval over seeds and the matching published figure.
    """
    rows = []
    for arch, by_set in usefulness["results"].items():
        for train_set in [s for s in TRAIN_SET_ORDER if s in by_set]:
            entry = by_set[train_set]
            stats = [(m, entry[m]) for m in TABLE_METRICS]
            stats += [(f"f1:{name}", per_class["f1"]) for name, per_class in entry["per_class"].items()]
            for metric, summary in stats:
                figure = next(
                    (f for f in figures if (f.arch, f.train_set, f.metric) == (arch, train_set, metric)), None
                )
                interval = seed_interval(summary["per_seed"])
                mean = summary["mean"]
                rows.append(
                    {
                        "experiment": experiment,
                        "arch": arch,
                        "weights": _weights(usefulness, arch),
                        "train_set": train_set,
                        "train_set_label": CONDITION_LABELS[train_set],
                        "metric": metric,
                        "mean": mean,
                        "seed_ci_low": interval[0] if interval else None,
                        "seed_ci_high": interval[1] if interval else None,
                        "boot_ci_low": summary["ci_low"],
                        "boot_ci_high": summary["ci_high"],
                        "n_seeds": len(summary["per_seed"]),
                        "per_seed": ";".join("" if v is None else f"{v:.6g}" for v in summary["per_seed"]),
                        "n_train": usefulness["train_images"][train_set],
                        "n_test": usefulness["test_images"],
                        "paper": figure.paper if figure else None,
                        "paper_value": figure.value if figure else None,
                        "run_minus_paper": mean - figure.value if figure and mean is not None else None,
                    }
                )
    return rows


def _number(value: Any) -> float | None:
    """A CSV cell as a float (None for an empty cell)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def format_cell(row: dict[str, Any]) -> str:
    """'80.4 ±3.1 [76.0, 84.5]' in percent: mean, ± half-width over seeds (2+ seeds), [bootstrap 95% CI].

    An interval over seeds that [0, 100] clipped is no longer symmetric: it is written out, '37.3 (0.0–89.1) [...]'.
    """
    mean = _number(row["mean"])
    if mean is None:
        return "—"
    text = f"{100 * mean:.1f}"
    low, high = _number(row["seed_ci_low"]), _number(row["seed_ci_high"])
    if low is not None and high is not None:
        symmetric = abs((mean - low) - (high - mean)) < 5e-4
        text += f" ±{100 * (high - low) / 2:.1f}" if symmetric else f" ({100 * low:.1f}–{100 * high:.1f})"
    low, high = _number(row["boot_ci_low"]), _number(row["boot_ci_high"])
    if low is not None and high is not None:
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return text


def wide_table(rows: list[dict[str, Any]]) -> dict[str, list]:
    """{"columns", "rows"}: one row per arch and training set, metric cells as `format_cell`, paper figures last.

    Accepts `comparison_rows` output or the rows of the CSV it was written to (`read_rows`).
    """
    metrics = list(dict.fromkeys(str(r["metric"]) for r in rows))
    paper_metrics = list(dict.fromkeys(str(r["metric"]) for r in rows if _number(r["paper_value"]) is not None))
    columns = ["Classifier", "Weights", "Training set", "n train"]
    columns += [METRIC_LABELS.get(m) or f"F1 {m.split(':', 1)[1]}" for m in metrics]
    for metric in paper_metrics:
        label = METRIC_LABELS.get(metric, metric).lower()
        columns += [f"Paper {label}", f"Run - paper ({label}, points)"]
    table_rows = []
    for key in dict.fromkeys((str(r["arch"]), str(r["train_set"])) for r in rows):
        cells = {str(r["metric"]): r for r in rows if (str(r["arch"]), str(r["train_set"])) == key}
        first = next(iter(cells.values()))
        weights = re.sub(r" \([^()]*\)", "", str(first["weights"] or ""))  # the notes give the full description
        line = [first["arch"], weights, first["train_set_label"], int(first["n_train"])]
        line += [format_cell(cells[m]) if m in cells else "—" for m in metrics]
        for metric in paper_metrics:
            row = cells.get(metric)
            value = _number(row["paper_value"]) if row else None
            diff = _number(row["run_minus_paper"]) if row else None
            line.append(f"{100 * value:.2f} ({row['paper']})" if row and value is not None else "—")
            line.append(f"{100 * diff:+.1f}" if diff is not None else "—")
        table_rows.append(line)
    return {"columns": columns, "rows": table_rows}


def legend(rows: list[dict[str, Any]]) -> str:
    """What the cells mean, from the rows themselves (seeds, test images)."""
    n_seeds = sorted({int(r["n_seeds"]) for r in rows})
    n_test = sorted({int(r["n_test"]) for r in rows})
    seeds = " or ".join(str(n) for n in n_seeds)
    spread = (
        "± = half-width of the 95% Student-t interval over seeds, written out as (low–high) where [0, 100] clips it; "
        if max(n_seeds) > 1
        else "one classifier seed, so no interval over seeds; "
    )
    mixed = [r for r in rows if r["train_set"] == "real+synthetic" and r["n_train"]]
    real = {r["arch"]: r["n_train"] for r in rows if r["train_set"] == "real"}
    capped = any(str(r["n_train"]) == str(real.get(r["arch"])) for r in mixed)
    mix = (
        " Real + synthetic: a random mix of both sets capped at the real-only set's size (n train), so it trains "
        "on fewer real images than TRTR: it shows what replacing real images with synthetic ones does, not adding."
        if capped
        else ""
    )
    return (
        f"Percent on {' / '.join(f'{n:,}' for n in n_test)} real test images; mean over {seeds} seed(s); "
        f"{spread}[ ] = 95% bootstrap interval over test images (of the seed mean). "
        f"Paper: the published figure for that classifier and training set.{mix}"
    )


def markdown(rows: list[dict[str, Any]], *, title: str, notes: list[str]) -> str:
    """The comparison as a Markdown page: title, the table, what the cells mean, notes."""
    table = wide_table(rows)
    lines = [f"# {title}", "", "| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in table["rows"]]
    for paragraph in [legend(rows), *notes]:
        lines += ["", paragraph]
    return "\n".join(lines) + "\n"


def _tex_cell(text: str) -> str:
    return tex_escape(text).replace("±", r"$\pm$").replace("—", "--")


def latex(rows: list[dict[str, Any]], *, title: str, label: str) -> str:
    """The comparison as a booktabs table (percent cells) with the legend as caption."""
    table = wide_table(rows)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{lll" + "r" * (len(table["columns"]) - 3) + "}",
        r"\toprule",
        " & ".join(_tex_cell(c) for c in table["columns"]) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex_cell(str(c)) for c in row) + r" \\" for row in table["rows"]]
    caption = _tex_cell(f"{title}. {legend(rows)}")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\label{" + label + "}"]
    return "\n".join([*lines, r"\end{table}"]) + "\n"


def read_rows(csv_path: Path) -> list[dict[str, Any]]:
    """The rows of a comparison CSV written by `write_paper_tables` (empty cells as None)."""
    frame = pd.read_csv(csv_path, dtype={"per_seed": str, "paper": str})
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def write_paper_tables(
    usefulness: dict,
    out_dir: Path,
    *,
    experiment: str,
    notes: list[str] | None = None,
    figures: list[PaperFigure] | None = None,
) -> dict[str, str]:
    """Write out_dir/paper_comparison.{csv,md,tex}; returns their paths. `figures` defaults to the packaged file."""
    if not isinstance(usefulness.get("results"), dict) or not usefulness["results"]:
        raise ValueError(
            "the usefulness section holds no classifier results (it failed or was skipped): re-run "
            "`synthmed evaluate` with usefulness on, then write the tables again."
        )
    figures = figures_for(experiment, load_paper_figures() if figures is None else figures)
    by_set = next(iter(usefulness["results"].values()))
    n_classes = len(next(iter(by_set.values()))["per_class"])
    other_data = [f for f in figures if f.n_classes not in (None, n_classes)]  # the arm pointed at other data
    figures = [f for f in figures if f not in other_data]
    rows = comparison_rows(usefulness, experiment=experiment, figures=figures)
    out_dir = Path(out_dir)
    title = f"{experiment}: classifiers tested on real images, beside the published figure"
    matched = {(r["arch"], r["train_set"], r["metric"]) for r in rows}
    notes = [
        *(notes or []),
        *(
            f"Paper figure: {f.paper}, {f.domain}; {f.arch} trained on {f.train_set} images, {f.tested_on}"
            + ("." if (f.arch, f.train_set, f.metric) in matched else f" (not compared: this run trains no {f.arch}).")
            for f in figures
        ),
        *(
            f"Paper figure not compared: {f.paper} reports {f.arch} on {f.n_classes} classes ({f.domain}); this "
            f"run has {n_classes}, so it is not on the paper's data."
            for f in other_data
        ),
    ]
    if rests_on := (usefulness.get("rests_on") or {}).get("text"):
        notes.append(f"Rests on: {rests_on}")
    paths = {"csv": out_dir / f"{STEM}.csv", "markdown": out_dir / f"{STEM}.md", "latex": out_dir / f"{STEM}.tex"}
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    atomic_write_bytes(paths["csv"], frame.to_csv(index=False).encode())
    atomic_write_text(paths["markdown"], markdown(rows, title=title, notes=notes))
    atomic_write_text(paths["latex"], latex(rows, title=title, label=f"tab:{experiment}"))
    return {kind: str(path) for kind, path in paths.items()}


def run_notes(run_dir: Path) -> list[str]:
    """What this run's settings were, from RUN/experiment.json: profile, resolution, budget, synthetic set size."""
    described = read_json(Path(run_dir) / "experiment.json")
    experiment = described.get("experiment", {})
    prepare = (experiment.get("data") or {}).get("prepare") or {}
    train = experiment.get("train") or {}
    budget = ", ".join(
        f"{key} {train[key]}" for key in ("preset", "max_steps", "max_duration_min", "batch_size") if key in train
    )
    sample = experiment.get("sample") or {}
    parts = [
        f"profile {described.get('profile') or 'none'}",
        f"{prepare['size_px']} px" if "size_px" in prepare else None,
        f"diffusion training: {budget}" if budget else None,
        f"{sample['n_per_class']} synthetic images per class" if "n_per_class" in sample else None,
    ]
    return ["Run settings: " + "; ".join(p for p in parts if p) + "."]


def write_run_tables(eval_dir: Path, usefulness: Any) -> dict[str, str] | None:
    """RUN/tables/paper_comparison.* when `eval_dir` is RUN/eval or RUN itself (RUN/experiment.json names the
    experiment); None outside an experiment run or when the usefulness section holds no results."""
    eval_dir = Path(eval_dir)
    run_dir = next((d for d in (eval_dir, eval_dir.parent) if (d / "experiment.json").is_file()), None)
    if run_dir is None or not isinstance(usefulness, dict) or not isinstance(usefulness.get("results"), dict):
        return None
    name = str(read_json(run_dir / "experiment.json").get("experiment", {}).get("name") or run_dir.name)
    return write_paper_tables(usefulness, run_dir / TABLES_DIR, experiment=name, notes=run_notes(run_dir))


def report_section(paths: dict[str, str]) -> dict[str, Any]:
    """The HTML report's 'Beside the paper' section, read back from the CSV the tables were written from."""
    rows = read_rows(Path(paths["csv"]))
    table = wide_table(rows)
    compared = [r for r in rows if _number(r["paper_value"]) is not None]
    if compared:
        verdict = " ".join(
            f"{r['arch']} trained on {str(r['train_set']).replace('+', ' + ')} images: "
            f"{METRIC_LABELS.get(str(r['metric']), str(r['metric'])).lower()} {100 * float(r['mean']):.1f}% on "
            f"real test images, {100 * float(r['run_minus_paper']):+.1f} points against the "
            f"{100 * float(r['paper_value']):.2f}% {r['paper']} published."
            for r in compared
            if _number(r["mean"]) is not None
        )
    else:
        verdict = (
            "No classifier of this run matches a published figure recorded for its experiment "
            "(synthmed/report/paper_figures.toml); the notes of tables/paper_comparison.md say why."
        )
    return {
        "verdict": verdict,
        "status": "info",
        "table": [dict(zip(table["columns"], row)) for row in table["rows"]],
        "legend": legend(rows),
        "files": {kind: Path(path).name for kind, path in paths.items()},
    }
