"""Usefulness outputs for researchers: figures, results.csv / results.tex, and the trained classifiers on disk."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthmed import __version__
from synthmed.evaluate.classifiers import ImageClassifier, build_classifier
from synthmed.evaluate.tstr_metrics import METRICS
from synthmed.files import atomic_write_bytes, atomic_write_json, atomic_write_text

CONDITION_LABELS = {
    "real": "train real (TRTR)",
    "synthetic": "train synthetic (TSTR)",
    "real+synthetic": "train real + synthetic",
}
TABLE_METRICS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced acc.", "macro_f1": "Macro F1"}


def _save_png(fig, path: Path, out_dir: Path, dpi: int = 110) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path).relative_to(Path(out_dir).parent).as_posix()


def plot_scores(results: dict, path: Path, out_dir: Path) -> str:
    """Bars of accuracy, balanced accuracy, macro AUC, macro F1 per arch and training set, with 95% CIs."""
    from matplotlib.figure import Figure

    archs = list(results)
    fig = Figure(figsize=(4.8 * len(archs) + 1.5, 3.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(archs), sharey=True))
    colours = {"real": "#4C78A8", "synthetic": "#F58518", "real+synthetic": "#54A24B"}
    for ax, arch in zip(axes, archs):
        conds = list(results[arch])
        width = 0.8 / len(conds)
        for i, cond in enumerate(conds):
            stats = [results[arch][cond][m] for m in METRICS]
            means = [s["mean"] if s["mean"] is not None else np.nan for s in stats]
            low = [m - s["ci_low"] if s["ci_low"] is not None else 0 for m, s in zip(means, stats)]
            high = [s["ci_high"] - m if s["ci_high"] is not None else 0 for m, s in zip(means, stats)]
            ax.bar(
                np.arange(len(METRICS)) + (i - (len(conds) - 1) / 2) * width,
                means,
                width,
                yerr=[np.maximum(low, 0), np.maximum(high, 0)],
                capsize=3,
                color=colours[cond],
                label=CONDITION_LABELS[cond],
            )
        ax.set_xticks(np.arange(len(METRICS)), ["accuracy", "balanced\naccuracy", "macro AUC", "macro F1"])
        ax.set_ylim(0, 1.05)
        ax.set_title(arch)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score on real test images")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    return _save_png(fig, path, out_dir)


def plot_confusion_panels(
    panels: list[tuple[str, np.ndarray]],
    classes: list[str],
    *,
    row_label: str,
    path: Path,
    out_dir: Path,
    title: str | None = None,
) -> str:
    """Confusion matrices side by side (rows = `row_label`, columns = predicted class), each row summing to 100%."""
    from matplotlib.figure import Figure

    side = 1.2 + 0.55 * len(classes)
    fig = Figure(figsize=(side * len(panels) + 0.8, side + 0.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    image = None
    for ax, (panel_title, matrix) in zip(axes, panels):
        matrix = np.asarray(matrix, dtype=float)
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(share):
            ax.text(
                j,
                i,
                f"{value:.0%}\n({int(matrix[i, j])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value > 0.6 else "#222",
            )
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel(row_label)
        ax.set_title(panel_title, fontsize=9)
    assert image is not None  # panels is non-empty: fig.subplots(1, 0) above would have raised
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_png(fig, path, out_dir)


def plot_confusions(arch_results: dict, classes: list[str], *, arch: str, path: Path, out_dir: Path) -> str:
    """One arch's real-test confusion matrices, one panel per training set, summed over seeds."""
    panels = [
        (CONDITION_LABELS[cond], np.sum([np.asarray(m) for m in entry["confusion_matrix_per_seed"].values()], axis=0))
        for cond, entry in arch_results.items()
    ]
    return plot_confusion_panels(
        panels,
        classes,
        row_label="true class",
        path=path,
        out_dir=out_dir,
        title=f"{arch}: real test images, summed over seeds",
    )


def results_rows(section: dict) -> list[dict]:
    """Long-format rows (arch, train_set, metric, mean, ci_low, ci_high, seed spread, n) for results.csv."""
    rows = []
    for arch, by_cond in section["results"].items():
        weights = next((c["weights"] for c in section["rests_on"]["classifiers"] if c["arch"] == arch), None)
        for cond, entry in by_cond.items():
            base = {
                "arch": arch,
                "weights": weights,
                "train_set": cond,
                "n_train": section["train_images"][cond],
                "n_test": section["test_images"],
            }
            stats = [(m, entry[m]) for m in METRICS]
            for name, per_class in entry["per_class"].items():
                stats += [(f"{what}:{name}", per_class[what]) for what in ("precision", "recall", "f1")]
            for metric, s in stats:
                rows.append(
                    {
                        **base,
                        "metric": metric,
                        "mean": s["mean"],
                        "ci_low": s["ci_low"],
                        "ci_high": s["ci_high"],
                        "seed_sd": s["std_over_seeds"],
                        "seed_min": s["min_over_seeds"],
                        "seed_max": s["max_over_seeds"],
                        "n_seeds": len(s["per_seed"]),
                    }
                )
    return rows


TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped (for table cells and captions)."""
    return "".join(TEX_ESCAPES.get(char, char) for char in str(text))


def _cell(stats: dict) -> str:
    if stats["mean"] is None:
        return "--"
    text = f"{stats['mean']:.3f}"
    if stats["ci_low"] is not None and stats["ci_high"] is not None:
        text += f" [{stats['ci_low']:.2f}, {stats['ci_high']:.2f}]"
    return text


def latex_table(section: dict, classes: list[str]) -> str:
    """A booktabs LaTeX table: one row per arch and training set; metric cells 'mean [95% CI]'."""
    columns = [*TABLE_METRICS.values(), *(f"F1 {c}" for c in classes)]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{ll" + "c" * len(columns) + "}",
        r"\toprule",
        "Classifier & Training set & " + " & ".join(tex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    for arch, by_cond in section["results"].items():
        for cond, entry in by_cond.items():
            cells = [_cell(entry[m]) for m in TABLE_METRICS]
            cells += [_cell(entry["per_class"][c]["f1"]) for c in classes]
            lines.append(f"{tex_escape(arch)} & {tex_escape(CONDITION_LABELS[cond])} & " + " & ".join(cells) + r" \\")
    seeds = section["rests_on"]["classifiers"][0]["seeds"]
    caption = (
        f"Classifiers tested on {section['test_images']} real test images. Cells: mean over {len(seeds)} "
        f"seed(s) [95\\% bootstrap interval over test images]. " + tex_escape(section["rests_on"]["text"])
    )
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\label{tab:tstr}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(section: dict, classes: list[str], out_dir: Path) -> dict:
    """Write results.csv (long format) and results.tex; returns their paths relative to EVAL_DIR."""
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "results.csv", pd.DataFrame(results_rows(section)).to_csv(index=False).encode())
    atomic_write_text(out_dir / "results.tex", latex_table(section, classes))
    return {name: (out_dir / name).relative_to(out_dir.parent).as_posix() for name in ("results.csv", "results.tex")}


# Trained classifiers on disk.


def save_classifier(
    model: ImageClassifier, folder: Path, *, condition: str, seed: int, small_cnn_width: int, extra: dict
) -> dict:
    """Write MODEL.safetensors + MODEL.json (everything needed to rebuild it); returns paths and the config."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{condition.replace('+', '_plus_')}-seed{seed}"
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights_path = stem.with_suffix(".safetensors")
    save_file(state, str(weights_path))
    config = {
        "arch": model.arch,
        "classes": list(model.classes),
        "in_channels": model.in_channels,
        "image_size_px": model.image_size_px,
        "small_cnn_width": small_cnn_width,
        "trained_on": condition,
        "seed": seed,
        "synthmed_version": __version__,
        **extra,
    }
    atomic_write_json(stem.with_suffix(".json"), config)
    return {"weights": weights_path, "config": stem.with_suffix(".json")}


def load_classifier(weights_path: Path) -> ImageClassifier:
    """Rebuild a classifier saved by `save_classifier` from its .safetensors file and the .json beside it."""
    from safetensors.torch import load_file

    weights_path = Path(weights_path)
    config = json.loads(weights_path.with_suffix(".json").read_text())
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; leave the global RNG alone
        net = build_classifier(
            config["arch"],
            num_classes=len(config["classes"]),
            in_channels=config["in_channels"],
            small_cnn_width=config.get("small_cnn_width") or 32,
            vgg_recipe=False,  # "arch" is the network as built (classifiers.VGG_SCRATCH when the recipe was used)
        )
    model = ImageClassifier(
        net,
        arch=config["arch"],
        classes=config["classes"],
        in_channels=config["in_channels"],
        image_size_px=config["image_size_px"],
    )
    model.load_state_dict(load_file(str(weights_path)))
    return model.eval()
