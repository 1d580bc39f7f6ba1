"""Training throughput of synthmed's loop against a plain diffusers loop (same UNet, batch, data, precision).

    nice -n -10 .venv/bin/python bench/train_throughput.py --steps 40 --rounds 2

Both run in this process, alternating (plain, ours, plain, ours, ...) so machine load hits both alike.
Throughput is images/s over the steps after the first `--warmup-steps` (ours: from its stats.jsonl
windows, which include EMA, stats, progress bar and checkpoint-due checks). Reports the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from result_file import command_line, earlier_sections, table, write_result

from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.models.unet import build_scheduler, build_unet
from synthmed.train.config import resolve_mixed_precision, train_config_for_dataset
from synthmed.train.loop import train


def plain_loop(config, images: torch.Tensor, labels: torch.Tensor, *, steps: int, warmup: int) -> float:
    """The diffusers example recipe, minimal: accelerate + UNet2DModel + DDPMScheduler + AdamW, nothing else."""
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(config.mixed_precision))
    unet = build_unet(config.model).train()
    scheduler = build_scheduler(config.model)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        if step == warmup:
            start = time.perf_counter()
        idx = torch.randint(0, len(labels), (config.batch_size,), generator=g)
        clean = to_model_range(images[idx])
        noise = torch.randn(clean.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=g)
        pred = unet(scheduler.add_noise(clean, noise, t), t, class_labels=labels[idx]).sample
        loss = F.mse_loss(pred.float(), scheduler.get_velocity(clean, noise, t))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (steps - warmup) * config.batch_size / (time.perf_counter() - start)


def ours(config, *, steps: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.model_copy(
            update={
                "max_steps": steps,
                "log_every_steps": warmup,
                "checkpoint_every_steps": 10**9,
                "checkpoint_every_min": None,
                "sample_every_steps": 0,
                "grid_per_class": 1,
                "grid_sampler_steps": 1,
            }
        )
        train(cfg, run_dir=Path(tmp) / "run")
        records = [json.loads(x) for x in (Path(tmp) / "run" / "stats.jsonl").read_text().splitlines()]
        windows = [r for r in records if "images_per_s" in r][1:]  # skip the warmup window
        seconds = sum(warmup * config.batch_size / r["images_per_s"] for r in windows)
        return len(windows) * warmup * config.batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="bench/out/pneumonia/data")
    parser.add_argument("--preset", default="32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = train_config_for_dataset(args.data, preset=args.preset, max_steps=args.steps, batch_size=args.batch_size)
    pixels, labels, _ = load_arrays(args.data, "train")
    images, labels = torch.from_numpy(pixels), torch.from_numpy(labels.copy())
    plain, mine = [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(config, images, labels, steps=args.steps, warmup=args.warmup_steps))
        mine.append(ours(config, steps=args.steps, warmup=args.warmup_steps))
        print(f"round: plain {plain[-1]:.1f} img/s, synthmed {mine[-1]:.1f} img/s", flush=True)
    ratio = statistics.median(m / p for m, p in zip(mine, plain))
    load = os.getloadavg()[0]
    text = (
        f"precision {resolve_mixed_precision(config.mixed_precision)}, preset {args.preset}, batch "
        f"{args.batch_size}, threads {args.threads}, data {args.data}: plain median {statistics.median(plain):.1f} "
        f"img/s, synthmed median {statistics.median(mine):.1f} img/s, ratio (median of rounds) {ratio:.3f}. "
        f"Load average {load:.1f} on 2 cores at the end: rounds that disagree widely mean other jobs shared "
        f"the cores, and then the ratio is noise."
    )
    print(text)
    rows = [[k + 1, round(p, 1), round(m, 1), round(m / p, 3)] for k, (p, m) in enumerate(zip(plain, mine))]
    write_result(
        "train_throughput",
        title="Training throughput: synthmed loop vs a plain diffusers loop",
        command=command_line(),
        sections=[
            {
                "heading": "",
                "text": text,
                "table": table(["round", "plain loop img/s", "synthmed img/s", "ratio"], rows),
            }
        ]
        + earlier_sections("train_throughput"),
    )


if __name__ == "__main__":
    main()
