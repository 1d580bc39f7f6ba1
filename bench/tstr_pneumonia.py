"""Benchmark: TSTR on PneumoniaMNIST with stand-in "generators" of known quality, plus explanation speed.

The real train split is cut in two halves A and B. Classifiers train on A (TRTR) and on a stand-in
synthetic set made from B: B itself (an ideal generator: same distribution, different images), B
blurred and noised (a poor generator), and B with shuffled labels (a generator ignoring its class).
TSTR/TRTR ratios should read about 1, clearly lower, and about chance. Also times small_cnn training
(fp32 vs bf16 autocast, 1 vs 2 threads) and Grad-CAM / LIME per image.

    .venv/bin/python bench/tstr_pneumonia.py [--npz PATH] [--archs small_cnn,resnet50] [--seeds 0,1] [--epochs 10]
        [--model-selection real_val|last_epoch] [--only TEXT] [--skip-speed]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.explain import gradcam_maps, lime_maps
from synthmed.evaluate.tstr import TSTRConfig, fit_classifier, run_tstr

DEFAULT_NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist" / "pneumoniamnist_28_trainsubset.npz"
CLASSES = ["normal", "pneumonia"]


def load_split(npz, split: str) -> ImageArrays:
    pixels = npz[f"{split}_images"][:, None].astype(np.uint8)
    labels = npz[f"{split}_labels"].ravel().astype(np.int64)
    return ImageArrays(pixels, labels, CLASSES, [f"{split}-{i}" for i in range(len(labels))])


def degrade(arrays: ImageArrays, rng: np.random.Generator) -> ImageArrays:
    """Blur (sigma 1.5 px) and add noise (sd 20 grey levels): a poor generator's images."""
    blurred = gaussian_filter(arrays.pixels.astype(float), sigma=(0, 0, 1.5, 1.5))
    noisy = np.clip(blurred + rng.normal(0, 20, blurred.shape), 0, 255).astype(np.uint8)
    return ImageArrays(noisy, arrays.labels, arrays.classes, arrays.ids)


def time_training(train: ImageArrays, *, bf16: bool, threads: int, size_px: int) -> float:
    """Seconds per training batch of 64 at `size_px` (median of the batches after the first epoch)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        config = TSTRConfig(epochs=1, min_steps=0, image_size_px=size_px, bf16_autocast=bf16)
        subset = train.subset(np.arange(min(len(train), 64 * 12)))
        started = time.perf_counter()
        fit_classifier(subset, None, arch="small_cnn", config=config, seed=0)
        return (time.perf_counter() - started) / (len(subset) // 64)
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npz", type=Path, default=DEFAULT_NPZ)
    parser.add_argument("--archs", default="small_cnn", help="comma-separated: small_cnn, resnet50, densenet121, vgg19")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-selection", choices=("real_val", "last_epoch"), default="real_val")
    parser.add_argument("--only", default="", help="run only stand-ins whose name contains this text")
    parser.add_argument("--skip-speed", action="store_true", help="skip the training and explanation timings")
    args = parser.parse_args()
    if not args.npz.is_file():
        raise SystemExit(f"{args.npz} not found: pass --npz PATH to pneumoniamnist_28_trainsubset.npz (MedMNIST v2).")
    torch.set_num_threads(args.threads)
    npz = np.load(args.npz)
    train, val, test = (load_split(npz, s) for s in ("train", "val", "test"))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))
    half_a, half_b = train.subset(np.sort(order[: len(order) // 2])), train.subset(np.sort(order[len(order) // 2 :]))
    shuffled = ImageArrays(half_b.pixels, rng.permutation(half_b.labels), CLASSES, half_b.ids)
    stand_ins = {
        "ideal (real half B)": half_b,
        "poor (B blurred + noised)": degrade(half_b, rng),
        "label-blind (B, labels shuffled)": shuffled,
    }
    config = TSTRConfig(
        archs=tuple(args.archs.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        epochs=args.epochs,
        conditions=("real", "synthetic"),
        image_size_px=28,
        bootstrap_samples=200,
        model_selection=args.model_selection,
        save_classifiers="none",
    )
    print(
        f"# TSTR benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(
        f"real half A {len(half_a)} images {np.bincount(half_a.labels).tolist()}, test {len(test)} "
        f"{np.bincount(test.labels).tolist()}, config {config.model_dump(mode='json')}\n"
    )
    print(
        "| stand-in synthetic set | arch | TRTR bal. acc | TSTR bal. acc | TSTR/TRTR bal. acc [95% CI] | TRTR AUC "
        "| TSTR AUC | TSTR macro F1 | status (all archs) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, synthetic in stand_ins.items():
            if args.only not in name:
                continue
            started = time.perf_counter()
            section = run_tstr(
                real_train=half_a,
                real_val=val,
                real_test=test,
                synthetic=synthetic,
                config=config,
                out_dir=Path(tmp) / "usefulness",
            )
            for arch in config.archs:
                res = section["results"][arch]
                ratio = section["ratios"][arch]["tstr_over_trtr"]["balanced_accuracy"]
                shown = (
                    f"{ratio['mean']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]"
                    if ratio["mean"] is not None
                    else "n/a"
                )
                print(
                    f"| {name} | {arch} | {res['real']['balanced_accuracy']['mean']:.3f} | "
                    f"{res['synthetic']['balanced_accuracy']['mean']:.3f} | {shown} | "
                    f"{res['real']['macro_auc']['mean']:.3f} | {res['synthetic']['macro_auc']['mean']:.3f} | "
                    f"{res['synthetic']['macro_f1']['mean']:.3f} | {section['status']} | "
                    f"{time.perf_counter() - started:.0f} |",
                    flush=True,
                )

    if args.skip_speed:
        return
    # Speed of one training batch: bf16 and threads against fp32 on 1 thread, same run.
    print("\n| small_cnn training, batch 64 | s/batch | ratio to fp32, 1 thread |")
    print("|---|---|---|")
    for size_px in (28, 64):
        base = time_training(train, bf16=False, threads=1, size_px=size_px)
        print(f"| {size_px} px fp32, 1 thread | {base:.3f} | 1.00 |")
        for bf16, threads in ((True, 1), (False, 2)):
            value = time_training(train, bf16=bf16, threads=threads, size_px=size_px)
            print(
                f"| {size_px} px {'bf16' if bf16 else 'fp32'}, {threads} thread(s) | {value:.3f} | "
                f"{value / base:.2f} |",
                flush=True,
            )

    # Explanation speed per image (28 px, the model trained on half A).
    model = fit_classifier(half_a, val, arch="small_cnn", config=config, seed=0)
    images, labels = test.pixels[:8], test.labels[:8]
    started = time.perf_counter()
    gradcam_maps(model, images, labels)
    gradcam_s = (time.perf_counter() - started) / len(images)
    started = time.perf_counter()
    lime_maps(model, images[:4], labels[:4], num_samples=1000, batch_size=128)
    lime_s = (time.perf_counter() - started) / 4
    print(
        f"\n| explanation (28 px, small_cnn) | s/image | ratio to Grad-CAM |\n|---|---|---|\n"
        f"| Grad-CAM | {gradcam_s:.4f} | 1 |\n"
        f"| LIME, 1000 samples, batch 128 | {lime_s:.2f} | {lime_s / gradcam_s:.0f} |"
    )


if __name__ == "__main__":
    main()
