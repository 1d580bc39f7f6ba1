"""Paper arms: each experiment run's classifiers, tested on real images, beside the paper's published figure.

    .venv/bin/python bench/paper_arms.py bench/out/runs/brain_mri_vgg19-cpu [RUN ...] [--notes-file FILE.md]

Collects what the runs themselves wrote into bench/results/paper_arms.json; no figure is retyped:
RUN/tables/paper_comparison.csv (written by the run's report stage from eval/metrics.json), the TSTR/TRTR
ratios in eval/metrics.json (the real-trained classifier of the same arch is the in-run baseline), the
settings in RUN/experiment.json compared with the experiment file's own profile (so every `--set` that
changed the arm is listed), the budget actually spent (stages.json, train/stats.jsonl) and the traps the
dataset card (dataset/card.json) found.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import EARLIER, EARLIER_PREFIX, RESULTS_DIR, command_line, table, write_result  # noqa: E402

from synthmed.experiment.schema import read_experiment  # noqa: E402
from synthmed.models.config import objective_of  # noqa: E402
from synthmed.report.paper_tables import STEM, TABLES_DIR, legend, load_paper_figures, read_rows, wide_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATIO_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def overrides(run: Path, described: dict) -> list[str]:
    """'key: file value -> run value' for every setting the run changed from its experiment file's profile."""
    name, profile = described["experiment"]["name"], described.get("profile")
    files = [p for p in (ROOT / "experiments").glob("*.toml") if read_experiment(p, environ={})[0].name == name]
    if not files:
        return [f"(no experiments/*.toml is named {name}: settings not compared)"]
    config, _ = read_experiment(files[0], profile=profile, environ={})
    planned = _flatten(config.model_dump(mode="json", exclude={"profile"}))
    ran = _flatten(described["experiment"])
    changed = sorted(k for k in planned.keys() | ran.keys() if k != "data_root" and planned.get(k) != ran.get(k))
    return [
        f"`{k}`: {json.dumps(planned.get(k))} in `{files[0].name}` -> "
        + (json.dumps(ran[k]) if k in ran else "not set in the run's experiment.json")
        for k in changed
    ]


def dataset_card(run: Path, described: dict) -> dict:
    """The card of the dataset the run used: RUN/dataset/card.json, or the prepared folder's (`data.prepared`;
    a folder recorded on another machine is looked up under this checkout's bench/ by the same relative path)."""
    candidates = [run / "dataset" / "card.json"]
    for stage in described.get("stages", []):
        if stage.get("stage") == "prepare":
            folder = Path(stage["output"]).resolve()
            candidates.append(folder / "card.json")
            if "bench" in folder.parts:
                candidates.append(ROOT / Path(*folder.parts[folder.parts.index("bench") :]) / "card.json")
    for candidate in candidates:
        if candidate.is_file():
            return _json(candidate)
    raise SystemExit(f"no dataset card for {run}: looked for {', '.join(map(str, candidates))}.")


def budget(run: Path, described: dict, usefulness: dict, hardware: str) -> list[str]:
    """What the run spent and used, from its own files."""
    stages = _json(run / "stages.json")
    steps = [json.loads(line) for line in (run / "train" / "stats.jsonl").read_text().splitlines() if line.strip()]
    last = max((s for s in steps if "step" in s), key=lambda s: s["step"])
    experiment = described["experiment"]
    tstr = usefulness["config"]
    card = dataset_card(run, described)
    cap = f"at most {tstr['max_train_images']}" if tstr["max_train_images"] else "all"
    minutes = ", ".join(f"{k} {v['seconds'] / 60:.1f}" for k, v in stages.items())
    prediction = _json(run / "train" / "config.json").get("model", {}).get("prediction_type", "v_prediction")
    objective = "flow matching" if objective_of(prediction) == "flow_matching" else f"diffusion ({prediction})"
    manifest = run / "samples" / "manifest.csv"
    sampled = ""
    if manifest.is_file():  # a light copy of a run may leave the images out
        with open(manifest, newline="") as handle:
            made = next(csv.DictReader(handle))
        sampled = f" ({made['sampler']}, {made['steps']} steps, guidance {float(made['guidance_scale']):g})"
    return [
        f"Resolution: {card['image_size_px']} px images ({card['channels']} channel(s)); classifiers at "
        f"{tstr['image_size_px']} px.",
        f"Diffusion model: preset `{experiment['train'].get('preset')}`, {objective}, {last['step']:,} training "
        f"steps of batch {experiment['train'].get('batch_size')} in {last.get('wall_s', 0) / 60:.1f} min on "
        f"{hardware}.",
        f"Synthetic set: {experiment['sample'].get('n_per_class')} images per class{sampled}; classifiers: "
        f"{usefulness['rests_on']['text']}",
        f"Classifier training: {tstr['epochs']} epochs (at least {tstr['min_steps']} steps), batch "
        f"{tstr['batch_size']}, {cap} images per training set, "
        f"model selection `{tstr['model_selection']}`, seeds {', '.join(map(str, tstr['seeds']))}.",
        f"Stage wall clock (min): {minutes}.",
    ]


def traps(card: dict) -> list[str]:
    """The dataset card's warnings and duplicate / leakage counts."""
    near, exact = card["near_duplicates"], card["exact_duplicates"]
    lines = [f"Card warning: {w}" for w in card.get("warnings", [])]
    lines.append(
        f"Near-duplicate pairs (correlation >= {near.get('threshold_correlation')} of "
        f"{near.get('thumbnail_px')} px thumbnails, mirrored copies "
        f"{'included' if near.get('mirrored_included') else 'not checked'}): {near.get('pairs', 0):,}, "
        f"{near['crossing_splits']} crossing splits after grouping; byte-identical groups: {exact['groups']}, "
        f"{exact['crossing_splits']} crossing splits."
    )
    lines.append(
        "Patient ids: "
        + (
            f"known ({card['n_patients']:,} groups"
            + (f"; regex `{regex}`)" if (regex := card["config"].get("patient_id_regex")) else ")")
            if card.get("patient_ids_known")
            else "none in this source, so split by image (near-duplicate groups kept together)"
        )
        + "."
    )
    return lines


def ratio_table(usefulness: dict) -> dict:
    """TSTR / TRTR and (real+synthetic) / TRTR per arch, from the evaluate stage's own ratios."""
    rows = []
    for arch, by_name in usefulness["ratios"].items():
        for name, by_metric in by_name.items():
            cells = []
            for metric in RATIO_METRICS:
                r = by_metric[metric]
                cells.append(
                    "—"
                    if r["mean"] is None
                    else f"{r['mean']:.2f}"
                    + (f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["ci_low"] is not None else "")
                )
            rows.append([arch, name.replace("_over_", " / ").replace("augmented", "real+synthetic"), *cells])
    return table(["classifier", "ratio", "accuracy", "balanced accuracy", "macro F1"], rows)


def arm_sections(run: Path, hardware: str) -> list[dict]:
    described = _json(run / "experiment.json")
    usefulness = _json(run / "eval" / "metrics.json")["usefulness"]
    csv_path = run / TABLES_DIR / f"{STEM}.csv"
    if not csv_path.is_file():
        raise SystemExit(f"{csv_path} is missing: the run's report stage writes it (`synthmed report {run}`).")
    rows = read_rows(csv_path)
    name, profile = described["experiment"]["name"], described.get("profile")
    figures = [f for f in load_paper_figures() if name in f.experiments]
    papers = ", ".join(sorted({f.paper for f in figures})) or "no published figure"
    compared = [r for r in rows if r["paper_value"] is not None and r["mean"] is not None]
    summary = " ".join(
        f"**{r['arch']} trained on synthetic images only: {100 * r['mean']:.1f}% {r['metric'].replace('_', ' ')} "
        f"on real test images against {100 * r['paper_value']:.2f}% published ({100 * r['run_minus_paper']:+.1f} "
        f"points).**"
        for r in compared
        if r["train_set"] == "synthetic"
    )
    changed = overrides(run, described)
    differs = [
        *budget(run, described, usefulness, hardware),
        *(
            f"Paper figure: {f.paper}, {f.domain}, {f.arch} trained on {f.train_set} images, {f.tested_on}."
            for f in figures
        ),
    ]
    return [
        {
            "heading": f"{name} ({profile or 'no'} profile, run folder {run.name}) beside {papers}",
            "text": f"{summary}\n\n{legend(rows)} Run folder `{run.name}`; table from "
            f"`{run.name}/{TABLES_DIR}/{STEM}.csv` (also `.md`, `.tex`).",
            "table": wide_table(rows),
        },
        {
            "heading": f"{run.name}: against the real-trained classifier (in-run baseline)",
            "text": "Ratios of seed means, with paired 95% bootstrap intervals over the real test images "
            "(eval/metrics.json, usefulness.ratios).",
            "table": ratio_table(usefulness),
        },
        {
            "heading": f"{run.name}: what differs from the paper and from the experiment file",
            "text": "\n".join(f"- {line}" for line in differs)
            + "\n\nSettings changed from the experiment file's profile for this run:\n\n"
            + ("\n".join(f"- {line}" for line in changed) if changed else "- none"),
        },
        {
            "heading": f"{run.name}: the data's known traps, as the dataset card found them",
            "text": "\n".join(f"- {line}" for line in traps(dataset_card(run, described))),
        },
    ]


def architectures_section(runs: list[Path]) -> dict | None:
    """Every classifier of the runs that train several (the all_architectures_* files): TSTR beside TRTR."""
    rows = []
    for run in runs:
        found = read_rows(run / TABLES_DIR / f"{STEM}.csv")
        if len({r["arch"] for r in found}) < 2:
            continue
        cell = {(r["arch"], r["train_set"], r["metric"]): r for r in found}
        name = _json(run / "experiment.json")["experiment"]["name"]
        for arch in dict.fromkeys(r["arch"] for r in found):
            tstr, trtr = cell[(arch, "synthetic", "accuracy")], cell[(arch, "real", "accuracy")]
            balanced = cell[(arch, "synthetic", "balanced_accuracy")]
            paper = f"{100 * tstr['paper_value']:.2f}%" if tstr["paper_value"] is not None else ""
            rows.append(
                [
                    name,
                    arch,
                    f"{100 * tstr['mean']:.1f}% [{100 * tstr['boot_ci_low']:.1f}, {100 * tstr['boot_ci_high']:.1f}]",
                    f"{100 * balanced['mean']:.1f}%",
                    f"{100 * trtr['mean']:.1f}%",
                    f"{tstr['mean'] / trtr['mean']:.2f}" if trtr["mean"] else "—",
                    paper,
                ]
            )
    if not rows:
        return None
    columns = [
        "run",
        "classifier",
        "TSTR accuracy [95% CI]",
        "TSTR balanced acc.",
        "TRTR accuracy",
        "TSTR / TRTR",
        "paper",
    ]
    return {
        "heading": "Every classifier on every domain (all_architectures_*.toml)",
        "text": "Each domain's CPU-profile model and synthetic images (the paper arm's run folder, copied), every "
        "usefulness classifier trained on them alone and tested on the real test images; TRTR is the same "
        "classifier trained on real images (one seed each, from scratch). The per-arm tables below carry balanced "
        "accuracy, F1 per class and the real + synthetic rows.",
        "table": table(columns, rows),
    }


def earlier_or_current_sections() -> list[dict]:
    """Every section of the current bench/results/paper_arms.json (to keep arms whose run folders are gone)."""
    path = RESULTS_DIR / "paper_arms.json"
    return _json(path).get("sections", []) if path.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by `synthmed run`")
    parser.add_argument("--notes-file", type=Path, help="markdown: how the runs were made, shown under the title")
    parser.add_argument(
        "--hardware",
        action="append",
        default=[],
        metavar="RUN=TEXT",
        help="what a run trained on (default: one CPU thread on a shared 2-core machine)",
    )
    parser.add_argument(
        "--keep-earlier", action="store_true", help="keep the current file's arms that are not re-collected, labelled"
    )
    args = parser.parse_args()
    hardware = dict(item.split("=", 1) for item in args.hardware)
    sections = [
        s
        for run in args.runs
        for s in arm_sections(run, hardware.get(run.name, "one CPU thread on a shared 2-core machine"))
    ]
    if (summary := architectures_section(args.runs)) is not None:
        sections.insert(0, summary)
    if args.keep_earlier:
        names = {_json(run / "experiment.json")["experiment"]["name"] for run in args.runs}
        sections += [
            s if s["heading"].startswith(EARLIER_PREFIX) else s | {"heading": f"{EARLIER}: {s['heading']}"}
            for s in earlier_or_current_sections()
            if not any(s["heading"].removeprefix(f"{EARLIER}: ").startswith(f"{name}") for name in names)
        ]
    path = write_result(
        "paper_arms",
        title="Paper arms: classifiers trained on synthetic images, tested on real ones, beside the papers",
        command=command_line(),
        notes=args.notes_file.read_text() if args.notes_file else "",
        sections=sections,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
