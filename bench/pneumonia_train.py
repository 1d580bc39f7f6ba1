"""Quality per budget: train on PneumoniaMNIST (32 px) for a wall-clock budget on CPU, then sample N per class.

    nice -n -10 .venv/bin/python bench/pneumonia_train.py --duration-min 25 --n-per-class 600

Outputs (git-ignored) under bench/out/pneumonia/: data/ (prepared), run/ (training run), samples/.
Score them with bench/pneumonia_eval.py. A killed run continues when re-run (it resumes).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch
from result_file import command_line, earlier_sections, table, write_result

from synthmed.sample.generate import SampleConfig, sample_images
from synthmed.train.config import train_config_for_dataset
from synthmed.train.loop import train

NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist" / "pneumoniamnist_28_trainsubset.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/out/pneumonia")
    parser.add_argument("--npz", default=str(NPZ))
    parser.add_argument("--duration-min", type=float, default=25.0)
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="a step budget instead of --duration-min (to compare recipes at an equal step count)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--mixed-precision", default="no")
    parser.add_argument("--n-per-class", type=int, default=600)
    parser.add_argument("--sampler", default="dpmpp")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument(
        "--class-balance-power",
        type=float,
        default=1.0,
        help="1 = classes equally often (synthmed's default); 0 = as the data is (the first run)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    # Prepare the dataset at 32 px (once).
    data = out / "data"
    if not (data / "dataset.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "synthmed.cli", "prepare", args.npz, "--size", "32", "--out", str(data)], check=True
        )

    # Train for the wall-clock budget (resumes if a previous attempt was killed).
    budget = {"max_steps": args.max_steps} if args.max_steps else {"max_duration_min": args.duration_min}
    config = train_config_for_dataset(
        data,
        preset="32",
        **budget,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_warmup_steps=50,
        mixed_precision=args.mixed_precision,
        checkpoint_every_steps=1000,
        checkpoint_every_min=5.0,
        log_every_steps=20,
        class_balance_power=args.class_balance_power,
    )
    start = time.perf_counter()
    model_dir = train(config, run_dir=out / "run", resume=True)
    train_min = (time.perf_counter() - start) / 60
    logging.info("training session took %.1f min", train_min)

    # Sample N per class.
    start = time.perf_counter()
    samples = out / f"samples_{args.sampler}{args.steps}_g{args.guidance_scale:g}"
    sample_images(
        SampleConfig(
            model_dir=str(model_dir),
            out_dir=str(samples),
            n_per_class=args.n_per_class,
            sampler=args.sampler,
            steps=args.steps,
            guidance_scale=args.guidance_scale,
            batch_size=64,
        )
    )
    sample_min = (time.perf_counter() - start) / 60
    logging.info("sampling took %.1f min -> %s", sample_min, samples)
    step = json.loads((model_dir / "config.json").read_text()).get("step", "?")
    rows = [
        [str(out), step, round(train_min, 1), args.n_per_class, f"{args.sampler} {args.steps}", round(sample_min, 1)]
    ]
    columns = ["run", "steps trained", "training min (this session)", "images per class", "sampler", "sampling min"]
    text = (
        f"Samples in {samples}; their quality is measured by `bench/pneumonia_eval.py {samples}` (its own "
        f"result). Class-balance power {args.class_balance_power}, batch {args.batch_size}, lr {args.lr}."
    )
    write_result(
        "pneumonia_train",
        title="PneumoniaMNIST 32 px: training on a wall-clock budget",
        command=command_line(),
        sections=[{"heading": "", "text": text, "table": table(columns, rows)}] + earlier_sections("pneumonia_train"),
    )


if __name__ == "__main__":
    main()
