"""CPU-sized model presets: training throughput of every preset, and the quality a CPU preset reaches in a short run.

    nice -n 5 .venv/bin/python bench/presets_cpu.py throughput --batch-size 8 --rounds 2
    nice -n 5 .venv/bin/python bench/presets_cpu.py quality --data bench/out/brain64/data --preset 64-cpu \\
        --steps 300 --batch-size 32

`throughput`: one training step (min-SNR v-loss, backward, AdamW) of each preset at its image size, grey images,
alternating presets in one process (warm-up step first, then `--rounds` rounds), with 1 and with 2 threads
(`--threads`).
Reports images/s from wall time and from this process's CPU time (one thread: CPU time is what a quiet machine
would take; wall time grows with other jobs), and each preset's speed relative to the '32' preset.
`quality`: trains the preset on a prepared dataset for a fixed number of steps (one thread), samples 32 images
per class (DPM-Solver++ 20 steps, no guidance, seeds 0..31), and runs `synthmed evaluate`'s fidelity part: the
panel MMD² of synthetic vs real training images as a multiple of the real-vs-real floor (1 = as close as
held-out real images), per panel and class. The budget in CPU-minutes is steps x batch / the preset's
one-thread images/s. Writes bench/results/presets_cpu.json (sections of the two commands are kept separately).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import RESULTS_DIR, command_line, table, write_result  # noqa: E402

PRESET_SIZES = {"32": 32, "64": 64, "64-cpu": 64, "128": 128, "128-cpu": 128}
NAME = "presets_cpu"


def step_seconds(arms: dict[str, tuple[int, str]], *, batch_size: int, rounds: int, threads: int) -> dict:
    """Wall and CPU seconds per training step of each arm {label: (image_size_px, preset)}, alternating arms."""
    import torch

    from synthmed.models.config import preset_config
    from synthmed.models.objective import diffusion_loss
    from synthmed.models.unet import build_scheduler, build_unet

    torch.set_num_threads(threads)
    built = {}
    for label, (size, preset) in arms.items():
        config = preset_config(preset, image_size_px=size, in_channels=1, num_classes=4)
        unet = build_unet(config).train()
        built[label] = (unet, build_scheduler(config), torch.optim.AdamW(unet.parameters(), lr=1e-4), size)
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in arms}
    for round_ in range(rounds + 1):  # round 0 warms each arm up (allocator, oneDNN kernels)
        for label, (unet, scheduler, optimizer, size) in built.items():
            clean = torch.rand(batch_size, 1, size, size, generator=generator) * 2 - 1
            labels = torch.randint(0, 4, (batch_size,), generator=generator)
            wall, cpu = time.perf_counter(), time.process_time()
            predict = lambda x, t, c, unet=unet: unet(x, t, class_labels=c).sample  # noqa: E731
            loss = diffusion_loss(predict, scheduler, clean, labels, generator=generator, snr_gamma=5.0)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if round_:
                times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
            took = f"{time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU"
            print(f"threads {threads} round {round_} {label}: {took}", flush=True)
    return {
        label: {
            "wall_s": statistics.median(t[0] for t in rows),
            "cpu_s": statistics.median(t[1] for t in rows),
            "params": sum(p.numel() for p in built[label][0].parameters()),
        }
        for label, rows in times.items()
    }


def throughput(args) -> dict:
    arms = {preset: (size, preset) for preset, size in PRESET_SIZES.items()}
    columns = ["preset", "image px", "params (M)"]
    cells: dict[str, list] = {preset: [size] for preset, size in PRESET_SIZES.items()}
    loads = []
    for threads in args.threads:
        measured = step_seconds(arms, batch_size=args.batch_size, rounds=args.rounds, threads=threads)
        loads.append(f"{os.getloadavg()[0]:.1f} ({threads} thread{'s' * (threads > 1)})")
        ref = args.batch_size / measured["32"]["wall_s"]
        columns += [f"img/s {threads} thr (wall)", f"img/s {threads} thr (CPU time)", f"x '32' ({threads} thr)"]
        for preset, row in cells.items():
            if len(row) == 1:
                row.append(round(measured[preset]["params"] / 1e6, 2))
            wall = args.batch_size / measured[preset]["wall_s"]
            cpu = args.batch_size * threads / measured[preset]["cpu_s"]  # quiet machine: wall = CPU / threads
            row += [round(wall, 2), round(cpu, 2), round(wall / ref, 3)]
    text = (
        f"Batch {args.batch_size}, grey images, one training step per preset per round, {args.rounds} round(s) after "
        f"a warm-up round, presets alternating in one process; medians. Load average on the shared 2-core machine "
        f"{', '.join(loads)}: wall-clock images/s are divided by the load, so read the ratios to '32' (same rounds, "
        f"same load) and the CPU-time column (batch x threads / CPU seconds: about the quiet-machine speed)."
    )
    rows = [[preset, *row] for preset, row in cells.items()]
    return {"heading": "Training throughput per preset", "text": text, "table": table(columns, rows)}


def quality(args) -> dict:
    import torch

    from synthmed.evaluate.panel_distance import panel_status
    from synthmed.evaluate.run import EvalConfig, evaluate
    from synthmed.sample.generate import SampleConfig, sample_images
    from synthmed.train.config import train_config_for_dataset
    from synthmed.train.loop import train

    torch.set_num_threads(1)
    run_dir = args.out / f"{args.data.parent.name}_{args.preset}_{args.steps}"
    config = train_config_for_dataset(
        args.data, preset=args.preset, max_steps=args.steps, batch_size=args.batch_size, seed=0
    )
    cpu = time.process_time()
    model_dir = train(config, run_dir=run_dir, resume=(run_dir / "checkpoints").is_dir())
    train_cpu_s = time.process_time() - cpu
    samples = run_dir / "samples"
    if not (samples / "manifest.csv").is_file():
        sample_images(SampleConfig(model_dir=str(model_dir), out_dir=str(samples), n_per_class=32, seed_start=0))
    metrics_path = evaluate(
        EvalConfig(
            real_dir=args.data,
            synthetic_dir=samples,
            out_dir=run_dir / "eval",
            cache_dir=args.cache,
            seed=0,
            skip=("diversity", "memorisation", "usefulness", "condition_fidelity", "explanations"),
        )
    )
    fidelity = json.loads(Path(metrics_path).read_text())["fidelity"]
    rows = []
    for scope in ["overall", *fidelity["panels"]["texture"]["per_class"]]:
        cells = []
        for panel in ("intensity", "texture", "semantic"):
            block = fidelity["panels"][panel]
            block = block["overall"] if scope == "overall" else block["per_class"][scope]
            ratio = (block.get("ratio_to_floor") or {}).get("value")
            cells += [None if ratio is None else round(float(ratio), 2), panel_status(block)]
        rows.append([args.preset, scope, *cells])
    stats = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    trained_s = max(r.get("wall_s", 0) for r in stats)
    text = (
        f"{args.data} ({config.model.image_size_px} px), preset {args.preset}, {args.steps} steps of batch "
        f"{args.batch_size} ({args.steps * args.batch_size:,} images), seed 0, one thread; training took "
        f"{trained_s / 60:.1f} wall-minutes on the shared machine"
        + (f" ({train_cpu_s / 60:.1f} CPU-minutes in this process)" if train_cpu_s > 60 else "")
        + f". Fidelity status {fidelity['status']}: {fidelity['verdict']} 32 synthetic images per class."
    )
    columns = ["preset", "class", "intensity x floor", "status", "texture x floor", "status", "semantic x floor"]
    return {
        "heading": f"Quality after a short CPU run: {args.data.parent.name}, {args.preset}, {args.steps} steps",
        "text": text,
        "table": table([*columns, "status"], rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["throughput", "quality"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data", type=Path, default=Path("bench/out/brain64/data"))
    parser.add_argument("--preset", default="64-cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/out/presets_cpu"))
    parser.add_argument("--cache", type=Path, default=Path("bench/out/cache"))
    args = parser.parse_args()
    section = throughput(args) if args.part == "throughput" else quality(args)
    section["text"] += f"\n\nCommand: `{command_line()}`"
    old = RESULTS_DIR / f"{NAME}.json"
    earlier = json.loads(old.read_text())["sections"] if old.is_file() else []
    kept = [s for s in earlier if s["heading"] != section["heading"]]
    path = write_result(
        NAME,
        title="CPU-sized model presets: throughput and short-run quality",
        command="see each section's command",
        sections=sorted([*kept, section], key=lambda s: not s["heading"].startswith("Training throughput")),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
