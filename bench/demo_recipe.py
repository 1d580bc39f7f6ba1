"""The demo's recipe: condition recognition, verdicts and cost of the demo model at a fixed step count, per guidance.

    nice -n 5 .venv/bin/python bench/demo_recipe.py --arm 32:1189 --guidance 1 2 3 4
    nice -n 5 .venv/bin/python bench/demo_recipe.py --arm 32:1189:diffusion --arm 32:1189:flow_matching --guidance 4

Each `--arm PRESET:STEPS[:OBJECTIVE]` runs the demo (phantom, 200 radiographs per class, 32 px) with that model
preset, step budget and training objective (diffusion = v-prediction + cosine + min-SNR-5, or flow_matching;
default: the training default), one thread, no time cap: at a fixed step count the result does not depend on the
machine's load, only the wall time does. From the trained model it samples 32 images per class per guidance scale
(20 steps of the objective's sampler, DPM-Solver++ or flow Euler; seeds 0..31) and runs the demo's evaluation
without usefulness (TSTR): condition fidelity per class (a classifier trained on the real phantom names each
synthetic image's condition), and the fidelity, diversity, memorisation and explanation verdicts. The old recipe (a
6-minute wall-clock budget, which reached 1,189 steps on a quiet 2-core machine, and no guidance) is the baseline
row: arm 32:1189, guidance 1. Seconds per training step (one thread) come from a separate measurement that
alternates the arms' presets in one process (bench/presets_cpu.py's step_seconds), so the ratio between arms is fair
under load. `--model-dir` (once per arm, in order) scores an existing model folder (e.g. a checkpoint's model/)
instead of training the arm; `--heading` and `--summary` title the section and lead it with the run's conclusion.
Writes bench/results/demo_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from presets_cpu import step_seconds  # noqa: E402
from result_file import command_line, earlier_sections, table, write_result  # noqa: E402

from synthmed.demo import DemoConfig, demo_eval_config, demo_sample_config  # noqa: E402
from synthmed.models.config import objective_of as synthmed_objective_of  # noqa: E402
from synthmed.models.unet import load_model_config, load_model_metadata  # noqa: E402
from synthmed.train.config import OBJECTIVE_SETTINGS  # noqa: E402

CLASSES = ("normal", "consolidation", "pleural_effusion", "cardiomegaly")


def score(
    config: DemoConfig, dataset_dir: Path, model_dir: Path, guidance: float, folder: Path, skip: tuple[str, ...]
) -> dict:
    """Sample at `guidance`, evaluate like the demo (usefulness skipped); the figures of one table row."""
    from synthmed.evaluate.run import evaluate
    from synthmed.sample.generate import sample_images

    samples = folder / f"samples_g{guidance:g}"
    started = time.perf_counter()
    if not (samples / "manifest.csv").is_file():
        sample_images(demo_sample_config(config, model_dir, samples, guidance_scale=guidance))
    sample_s = time.perf_counter() - started
    eval_dir = folder / (f"eval_g{guidance:g}" + "".join(f"-{part}" for part in skip))
    if skip and (folder / f"eval_g{guidance:g}" / "metrics.json").is_file():
        eval_dir, skip = folder / f"eval_g{guidance:g}", ()  # a full evaluation of these samples exists: use it
    metrics_path = eval_dir / "metrics.json"
    if not metrics_path.is_file():
        evaluate(demo_eval_config(config, dataset_dir, samples, eval_dir, skip=("usefulness", *skip)))
    metrics = json.loads(metrics_path.read_text())
    condition = metrics["condition_fidelity"]
    per_class = condition["synthetic"]["per_class"]
    return {
        "per_class": [round(per_class[c]["accuracy"], 3) for c in CLASSES],
        "balanced": round(condition["synthetic"]["balanced_accuracy"], 3),
        "real_reference": round(condition["real_reference"]["balanced_accuracy"], 3),
        "statuses": [
            "not run" if k in skip else metrics[k].get("status")
            for k in ("fidelity", "diversity", "memorisation", "explanations")
        ],
        "condition_status": condition.get("status"),
        "sample_images_per_s": round(len(CLASSES) * config.samples_per_class / sample_s, 1) if sample_s > 1 else None,
    }


def train_arm(config: DemoConfig, objective: str | None) -> tuple[Path, Path]:
    """The demo's training (its phantom, step budget, seed, float32) with `objective`; (model folder, dataset).

    Resumes an interrupted arm; a finished one is reused.
    """
    from synthmed.data.phantom import prepare_phantom
    from synthmed.train.config import train_config_for_dataset
    from synthmed.train.loop import train

    dataset_dir, run_dir = config.out_dir / "dataset", config.out_dir / "run"
    if not (dataset_dir / "dataset.json").is_file():
        prepare_phantom(dataset_dir, n_per_class=config.n_per_class, size_px=config.size_px, seed=config.seed)
    train_config = train_config_for_dataset(
        dataset_dir,
        preset=config.preset,
        objective=objective,  # type: ignore[arg-type]
        max_duration_min=config.train_cap_minutes,
        max_steps=config.train_steps,
        seed=config.seed,
        mixed_precision="no",
    )
    return train(train_config, run_dir=run_dir, resume=(run_dir / "checkpoints").is_dir()), dataset_dir


def objective_of(model_dir: Path) -> str:
    """'flow_matching' or 'diffusion', from a model folder's config."""
    return synthmed_objective_of(load_model_config(model_dir).prediction_type)


def train_wall_min(run_dir: Path) -> float | None:
    """Wall-clock minutes the run's training took (all sessions), from its stats.jsonl; None without one."""
    stats = run_dir / "stats.jsonl"
    if not stats.is_file():
        return None
    walls = [json.loads(line).get("wall_s") for line in stats.read_text().splitlines() if line.strip()]
    walls = [w for w in walls if w is not None]
    return round(max(walls) / 60, 1) if walls else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--arm",
        action="append",
        default=None,
        help="PRESET:STEPS[:OBJECTIVE] (repeatable; default 32:1189; OBJECTIVE diffusion or flow_matching)",
    )
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0])
    parser.add_argument(
        "--model-dir", type=Path, action="append", default=None, help="score this model folder (one per arm)"
    )
    parser.add_argument("--heading", default="Demo model per recipe and guidance scale")
    parser.add_argument("--summary", default="", help="conclusion paragraph that leads the section")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument(
        "--condition-only", action="store_true", help="skip fidelity, diversity, memorisation (a quick sweep)"
    )
    parser.add_argument("--cost-rounds", type=int, default=3, help="alternating rounds of the per-step timing")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    arms = [(*a.split(":")[:2], (a.split(":")[2:] or [None])[0]) for a in (args.arm or ["32:1189"])]
    unknown = [o for _, _, o in arms if o is not None and o not in OBJECTIVE_SETTINGS]
    if unknown:
        parser.error(f"unknown objective {unknown[0]!r} in --arm; use one of {sorted(OBJECTIVE_SETTINGS)}")
    if args.model_dir is not None and len(args.model_dir) != len(arms):
        parser.error(f"give one --model-dir per --arm ({len(arms)} arms, {len(args.model_dir)} folders)")
    rows = []
    cost = step_seconds({p: (32, p) for p, _, _ in arms}, batch_size=64, rounds=args.cost_rounds, threads=1)
    for number, (preset, steps, objective) in enumerate(arms):
        folder = args.out / (f"arm_p{preset}_{steps}" + (f"_{objective}" if objective else ""))
        config = DemoConfig(
            out_dir=folder, preset=preset, train_steps=int(steps), train_cap_minutes=10_000, evaluate=False
        )
        if args.model_dir is None:
            model_dir, dataset_dir = train_arm(config, objective)
            done = load_model_metadata(model_dir)["step"]
            wall_min = train_wall_min(folder / "run")
        else:
            model_dir, dataset_dir = args.model_dir[number], folder / "dataset"
            done = load_model_metadata(model_dir)["step"]
            folder = folder / f"model_step{done}"
            wall_min = None
        objective = objective_of(model_dir)
        if objective == "flow_matching":
            config = config.model_copy(update={"sampler": "flow_euler"})
        step_s = cost[preset]["cpu_s"]
        for guidance in args.guidance:
            skip = ("fidelity", "diversity", "memorisation") if args.condition_only else ()
            row = score(config, dataset_dir, model_dir, guidance, folder, skip)
            print(json.dumps(row), flush=True)
            label = f"preset {preset}, {steps}-step budget, {objective}"
            if done != int(steps):
                label += f": checkpoint at step {done}"
            elif (preset, steps, guidance, objective) == ("32", "1189", 1.0, "diffusion"):
                label = "old recipe (6-min wall clock: 1,189 steps when quiet; no guidance)"
            rows.append(
                [
                    label,
                    done,
                    guidance,
                    round(step_s, 3),
                    round(done * step_s / 60, 1),
                    wall_min,
                    round(64 / step_s, 1),
                    row["sample_images_per_s"],
                    *row["per_class"],
                    row["balanced"],
                    row["real_reference"],
                    row["condition_status"],
                    *row["statuses"],
                ]
            )
    columns = [
        "recipe",
        "steps trained",
        "guidance",
        "s/step (1 thread, CPU)",
        "train CPU-min",
        "train wall-min (as run)",
        "train img/s (1 thread)",
        "sample img/s (wall)",
        *(f"recognised: {c}" for c in CLASSES),
        "recognised: balanced",
        "real test (ceiling)",
        "condition",
        "fidelity",
        "diversity",
        "memorisation",
        "explanations",
    ]
    text = (
        "Phantom chest radiographs, 32 px, 200 per class (train split as prepared by the demo), seed 0; 32 synthetic "
        "images per class per row (n = 128), 20 sampler steps (DPM-Solver++ for diffusion, flow Euler for flow "
        "matching). 'recognised' = share of a class's synthetic "
        "images that the real-trained small CNN (the demo's condition-fidelity classifier, one seed) names as that "
        "class. Verdicts are the demo evaluation's (explanations from 2 images, LIME 100 samples; usefulness "
        f"skipped). Per-step cost: batch 64, one thread, CPU time, median of {args.cost_rounds} alternating "
        f"rounds (load average {os.getloadavg()[0]:.1f} on 2 shared cores at the end); 'train CPU-min' = steps x "
        "that. 'train wall-min (as run)' = the training's own wall clock (stats.jsonl) on the shared, loaded "
        "machine, so it shows the load, not the recipe."
    )
    if args.model_dir is not None:
        text += (
            f"\n\nThese rows score checkpoints ({', '.join(map(str, args.model_dir))}), not finished runs (the "
            "shared machine was too loaded to finish the budget in the session); the full-budget rows come from "
            "the command without --model-dir. 'not run' = part skipped with --condition-only."
        )
    path = write_result(
        "demo_recipe",
        title="Demo recipe: condition recognition and verdicts at a fixed step budget",
        command=command_line(),
        sections=[
            {
                "heading": args.heading,
                "text": f"{args.summary}\n\n{text}" if args.summary else text,
                "table": table(columns, rows),
            }
        ]
        + earlier_sections("demo_recipe"),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
