"""Sampling speed (images/s) of each sampler at its default step count, from a trained model folder.

    nice -n -10 .venv/bin/python bench/sample_speed.py bench/out/pneumonia/run --images 32 --ddpm-images 16

All samplers run in this process on the same model, class-balanced labels and seeds; the UNet is
called in fixed 16-row chunks (as in `synthmed sample`).
"""

from __future__ import annotations

import argparse
import time

import torch

from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler
from synthmed.models.unet import load_model_folder
from synthmed.sample.generate import resolve_model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--ddpm-images", type=int, default=16, help="fewer for DDPM (1000 steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet, config, scheduler = load_model_folder(resolve_model_dir(args.model))
    shape = (config.in_channels, config.image_size_px, config.image_size_px)
    print("| sampler | steps | images | seconds | images/s | UNet evaluations/s |")
    print("|---|---|---|---|---|---|")
    for name, spec in SAMPLERS.items():
        n = args.ddpm_images if name == "ddpm" else args.images
        start = time.perf_counter()
        denoise(
            unet,
            make_scheduler(name, scheduler),
            labels=torch.arange(n) % config.num_classes,
            null_class=config.null_class,
            generators=[torch.Generator().manual_seed(k) for k in range(n)],
            image_shape=shape,
            steps=spec.default_steps,
            guidance_scale=args.guidance_scale,
            stochastic=spec.stochastic,
        )
        seconds = time.perf_counter() - start
        print(
            f"| {name} | {spec.default_steps} | {n} | {seconds:.1f} | {n / seconds:.3f} | "
            f"{n * spec.default_steps / seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
