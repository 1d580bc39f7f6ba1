"""Denoising images/s per UNet chunk (model_batch_size) on one device; writes bench/results/sample_chunks.json.

    python bench/sample_chunks.py --preset 256 --size 256 --deadline-s 300 --copy-to "$OUT"     # a CUDA GPU
    python bench/sample_chunks.py --device cpu --preset 32 --size 32 --images 8 --steps 2 --chunks 4 8  # smoke test

`synthmed sample` calls the UNet on exactly `model_batch_size` rows at a time (so an image does not
depend on `batch_size`); this times `synthmed.models.sampling.denoise` for each chunk size in
`--chunks`, with batches of 2 x chunk images (the ratio of the CUDA defaults, 256 / 128), on an
untrained preset model (speed does not depend on the weights): DPM-Solver++ 20 steps, classifier-free
guidance 2 (two UNet rows per image per step), bf16 autocast on CUDA. The baseline is the first chunk
(16, the CPU default and the old default everywhere), measured in the same run; every arm denoises
the same images (seeds 0..n-1, alternating classes) after one untimed warm-up batch. The last column
compares each arm's first images with the baseline's: the chunk size changes the images' low bits.
Arms stop being started when the next one would pass `--deadline-s`; the result file is rewritten
after every arm, so a killed run keeps the arms it finished.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
from result_file import command_line, table, write_result

from synthmed.models.config import preset_config
from synthmed.models.pixel import PixelDiffusion
from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler
from synthmed.models.unet import build_scheduler, build_unet

COMPARED_IMAGES = 8  # first images of every arm compared with the baseline's


def _model(args: argparse.Namespace, device: torch.device) -> PixelDiffusion:
    config = preset_config(args.preset, image_size_px=args.size, in_channels=1, num_classes=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(config).eval()
    return PixelDiffusion(config, unet=unet.to(device), scheduler=build_scheduler(config))


def _denoise(model: PixelDiffusion, args: argparse.Namespace, seeds: range, *, chunk: int, steps: int) -> torch.Tensor:
    autocast = torch.bfloat16 if args.bf16 else None
    return denoise(
        model,
        make_scheduler(args.sampler, model.scheduler),
        condition=model.class_condition(torch.tensor([seed % 2 for seed in seeds])),
        generators=[torch.Generator().manual_seed(seed) for seed in seeds],
        steps=steps,
        guidance_scale=args.guidance_scale,
        stochastic=SAMPLERS[args.sampler].stochastic,
        autocast_dtype=autocast,
        device=model.network.device,
        model_batch_size=chunk,
    )


def run_arm(model: PixelDiffusion, args: argparse.Namespace, chunk: int) -> dict:
    """Time one chunk size: a warm-up batch (untimed), then `args.images` images in batches of 2 x chunk."""
    device = model.network.device
    batch = min(2 * chunk, args.images)
    _denoise(model, args, range(batch), chunk=chunk, steps=2)  # CUDA start-up, kernel choice, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    images = [
        _denoise(model, args, range(first, min(first + batch, args.images)), chunk=chunk, steps=args.steps)
        for first in range(0, args.images, batch)
    ]
    seconds = time.perf_counter() - start
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    first = torch.cat(images)[:COMPARED_IMAGES]
    return {"chunk": chunk, "batch": batch, "seconds": seconds, "peak_gib": peak_gib, "first": first}


def _rows(arms: list[dict], args: argparse.Namespace) -> list[list]:
    base = arms[0]
    rows_per_image = args.steps * (2 if args.guidance_scale != 1.0 else 1)
    rows = []
    for arm in arms:
        if "error" in arm:
            rows.append([arm["chunk"], arm["batch"], args.images, "", "", "", "", "", arm["error"]])
            continue
        rate = args.images / arm["seconds"]
        diff = (arm["first"] - base["first"]).abs().max().item() * 127.5  # in 8-bit grey levels
        rows.append(
            [
                arm["chunk"],
                arm["batch"],
                args.images,
                round(arm["seconds"], 1),
                round(rate, 2),
                f"{rate / (args.images / base['seconds']):.2f}x",
                round(rate * rows_per_image),
                "n/a (CPU)" if arm["peak_gib"] is None else round(arm["peak_gib"], 2),
                round(diff, 2),
            ]
        )
    return rows


def _write(arms: list[dict], args: argparse.Namespace, *, what: str, skipped: list[int]) -> Path:
    finished = [arm for arm in arms if "error" not in arm]
    best = max(finished, key=lambda arm: args.images / arm["seconds"])
    text = (
        f"{what}, {args.sampler} {args.steps} steps, guidance {args.guidance_scale}, "
        f"{'bf16 autocast' if args.bf16 else 'float32'}, {args.threads} CPU thread(s); n = {args.images} images "
        f"of {args.size} px per arm (seeds 0..{args.images - 1}, 2 classes), batches of 2 x chunk images, one "
        f"untimed warm-up batch per arm. Baseline: {arms[0]['chunk']} rows per UNet call, measured in the same "
        f"run. Fastest: {best['chunk']} rows, {arms[0]['seconds'] / best['seconds']:.2f}x "
        f"the baseline's images/s. UNet rows/s counts the conditional and the null row of guidance. Max abs diff: "
        f"largest difference from the baseline's images over the first {min(COMPARED_IMAGES, args.images)} images, "
        f"in 8-bit grey levels (the same seeds; only the chunk size differs)."
    )
    if skipped:
        text += f" Not started (the next arm would have passed --deadline-s {args.deadline_s:g}): {skipped}."
    columns = [
        "model_batch_size (rows per UNet call)",
        "batch_size (images)",
        "images",
        "seconds",
        "images/s",
        f"vs {arms[0]['chunk']} rows",
        "UNet rows/s",
        "peak GPU memory (GiB)",
        "max abs diff vs baseline (8-bit levels)",
    ]
    path = write_result(
        "sample_chunks",
        title="Sampling speed per UNet chunk size (model_batch_size)",
        command=command_line(),
        sections=[{"heading": "", "text": text, "table": table(columns, _rows(arms, args))}],
    )
    if args.copy_to:
        Path(args.copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(args.copy_to) / path.name)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--preset", default="256", help="model architecture (untrained)")
    parser.add_argument("--size", type=int, default=256, help="image size (px)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="first = baseline")
    parser.add_argument("--images", type=int, default=256, help="images denoised per arm")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpmpp", choices=sorted(SAMPLERS))
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (CPU always runs float32)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deadline-s", type=float, default=600.0, help="start no arm that would end after this")
    parser.add_argument("--copy-to", default=None, help="also copy the result file here (e.g. $OUT)")
    args = parser.parse_args()
    if args.images < 1 or min(args.chunks) < 1:
        parser.error("--images and every --chunks value must be >= 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU is visible; use --device cpu")
    args.bf16 = device.type == "cuda" and not args.fp32
    start = time.perf_counter()
    model = _model(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    what = f"an untrained preset-{args.preset} model at {args.size} px on {name} (torch {torch.__version__})"
    arms: list[dict] = []
    skipped: list[int] = []
    for chunk in args.chunks:
        elapsed = time.perf_counter() - start
        last = arms[-1].get("took_s", 0.0) if arms else 0.0
        if arms and elapsed + last > args.deadline_s:
            skipped.append(chunk)
            continue
        began = time.perf_counter()
        try:
            arm = run_arm(model, args, chunk)
        except torch.OutOfMemoryError:
            if not arms:
                raise  # no baseline: nothing to compare with
            torch.cuda.empty_cache()
            arm = {"chunk": chunk, "batch": min(2 * chunk, args.images), "error": "out of memory"}
        arm["took_s"] = time.perf_counter() - began
        arms.append(arm)
        rate = "" if "error" in arm else f"{args.images / arm['seconds']:.2f} images/s"
        print(f"chunk {chunk}: {arm.get('error', rate)} ({arm['took_s']:.0f} s with warm-up)", flush=True)
        _write(arms, args, what=what, skipped=skipped)
    print(f"wrote {_write(arms, args, what=what, skipped=skipped)}")  # again: with the arms not started


if __name__ == "__main__":
    main()
