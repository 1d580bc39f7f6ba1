"""Sampling speed (images/s) of each sampler at its default step count; writes bench/results/sample_speed.json.

    nice -n -10 .venv/bin/python bench/sample_speed.py bench/out/pneumonia/run --images 16 --ddpm-images 16
    .venv/bin/python bench/sample_speed.py --preset 32 --size 32 --images 16 --ddpm-images 4   # no trained run

All samplers run in this process on the same model, class-balanced labels and seeds; the UNet is
called in fixed 16-row chunks (as in `synthmed sample`). Speed does not depend on the weights, so
`--preset` times an untrained model of that architecture when no trained run is at hand.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from result_file import command_line, table, write_result

from synthmed.models.config import preset_config
from synthmed.models.pixel import PixelDiffusion
from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler
from synthmed.models.unet import build_scheduler, build_unet, load_model_folder
from synthmed.sample.generate import resolve_model_dir


def _model(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:  # (unet, config, scheduler, description)
    if args.model:
        return (*load_model_folder(resolve_model_dir(args.model)), f"the trained model {args.model}")
    config = preset_config(args.preset, image_size_px=args.size, in_channels=1, num_classes=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(config).eval()
    return unet, config, build_scheduler(config), f"an untrained preset-{args.preset} model at {args.size} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=None, help="run or model folder (or use --preset)")
    parser.add_argument("--preset", default="32", help="architecture to time untrained when no model is given")
    parser.add_argument("--size", type=int, default=32, help="image size for --preset")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--ddpm-images", type=int, default=16, help="fewer for DDPM (1000 steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet, config, scheduler, what = _model(args)
    model = PixelDiffusion(config, unet=unet, scheduler=scheduler)
    load_before = os.getloadavg()[0]
    rows, speed = [], {}
    for name, spec in SAMPLERS.items():
        n = args.ddpm_images if name == "ddpm" else args.images
        start = time.perf_counter()
        denoise(
            model,
            make_scheduler(name, scheduler),
            condition=model.class_condition(torch.arange(n) % config.num_classes),
            generators=[torch.Generator().manual_seed(k) for k in range(n)],
            steps=spec.default_steps,
            guidance_scale=args.guidance_scale,
            stochastic=spec.stochastic,
        )
        seconds = time.perf_counter() - start
        speed[name] = n / seconds
        rows.append(
            [
                name,
                spec.default_steps,
                n,
                round(seconds, 1),
                round(n / seconds, 3),
                round(n * spec.default_steps / seconds),
            ]
        )
        print(rows[-1], flush=True)
    text = (
        f"{what}, float32, {args.threads} thread(s), guidance {args.guidance_scale}; load average "
        f"{load_before:.1f} before the run (2 cores). DPM-Solver++ at 20 steps is "
        f"{speed['dpmpp'] / speed['ddpm']:.0f}x faster than DDPM at 1000 steps (images/s ratio)."
    )
    columns = ["sampler", "default steps", "images", "seconds", "images/s", "UNet evaluations/s (x batch)"]
    path = write_result(
        "sample_speed",
        title="Sampling speed per sampler",
        command=command_line(),
        sections=[{"heading": "", "text": text, "table": table(columns, rows)}],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
