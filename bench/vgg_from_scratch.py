"""VGG-19 from scratch (no ImageNet weights): plain VGG-19 beside synthmed's recipe, on a small real dataset.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/vgg_from_scratch.py bench/out/brain64/data

Trains on real train images, tests on the real test split (balanced accuracy; chance = 1 / classes):
plain torchvision VGG-19 (no batch norm, 4096-wide head), synthmed's from-scratch recipe (vgg19_bn with a
global-average-pool head, Kaiming-normal init, one-cycle LR with 15% warm-up: `TSTRConfig.vgg_recipe`),
and the small CNN as the strongest simple baseline. Same seeds, images, steps and optimiser for all.
Writes bench/results/vgg_from_scratch.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import command_line, table, write_result  # noqa: E402

from synthmed.data.arrays import load_image_arrays  # noqa: E402
from synthmed.data.manifest import read_dataset_info  # noqa: E402
from synthmed.evaluate.classifiers import predict_proba  # noqa: E402
from synthmed.evaluate.tstr import TSTRConfig, classification_metrics, fit_classifier  # noqa: E402

ARMS = {
    "vgg19 recipe: vgg19_bn + GAP head (from scratch)": ("vgg19", True),
    "small_cnn (baseline)": ("small_cnn", True),
    "vgg19 plain (from scratch)": ("vgg19", False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="prepared dataset with train and test splits")
    parser.add_argument("--size-px", type=int, default=32)
    parser.add_argument("--max-train", type=int, default=768)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    torch.set_num_threads(1)

    info = read_dataset_info(args.data)
    kwargs = {"classes": list(info.classes), "size_px": args.size_px, "channels": info.channels}
    train = load_image_arrays(args.data, split="train", **kwargs)
    test = load_image_arrays(args.data, split="test", **kwargs)
    chance = 1.0 / len(info.classes)
    config = TSTRConfig(
        epochs=args.epochs,
        min_steps=0,
        batch_size=args.batch_size,
        image_size_px=args.size_px,
        max_train_images=args.max_train,
    )
    rows, scores = [], {}
    for name, (arch, recipe) in ARMS.items():
        per_seed, seconds = [], []
        for seed in args.seeds:
            started = time.perf_counter()
            model = fit_classifier(
                train, None, arch=arch, config=config.model_copy(update={"vgg_recipe": recipe}), seed=seed
            )
            seconds.append(time.perf_counter() - started)
            proba = predict_proba(model, test.pixels, batch_size=64)
            per_seed.append(classification_metrics(test.labels, proba, len(info.classes))["balanced_accuracy"])
            print(f"{name} seed {seed}: balanced accuracy {per_seed[-1]:.3f} ({seconds[-1]:.0f} s)", flush=True)
        scores[name] = float(np.mean(per_seed))
        rows.append(
            [
                name,
                round(scores[name], 3),
                ", ".join(f"{s:.3f}" for s in per_seed),
                round(scores[name] / chance, 2),
                round(float(np.mean(seconds))),
            ]
        )
        _write(args, info, rows, scores, chance=chance, n_train=min(len(train), args.max_train), n_test=len(test))


def _write(args, info, rows: list, scores: dict, *, chance: float, n_train: int, n_test: int) -> None:
    """Write the result so far (after each arm, so a stopped run keeps what it measured)."""
    baseline = scores.get("small_cnn (baseline)")
    table_rows = [[*row, round(scores[row[0]] / baseline, 2) if baseline else "-"] for row in rows]
    steps = args.epochs * -(-n_train // args.batch_size)
    text = (
        f"{info.name}, {len(info.classes)} classes (chance balanced accuracy {chance:.2f}), {args.size_px} px; "
        f"trained on {n_train} real train images (seeded subset), {steps} steps of {args.batch_size} (AdamW "
        f"lr 1e-3, one-cycle with 15% warm-up), seeds {args.seeds}; tested on {n_test} real test images. One "
        f"CPU thread under nice on a shared 2-core machine (train seconds are wall clock under load)."
    )
    if len(rows) < len(ARMS):
        text += f" Partial: {len(rows)} of {len(ARMS)} arms measured."
    write_result(
        "vgg_from_scratch",
        title="VGG-19 from scratch: plain vs synthmed's recipe (vgg19_bn + GAP head)",
        command=command_line(),
        sections=[
            {
                "heading": "Real-test balanced accuracy",
                "text": text,
                "table": table(
                    ["classifier", "balanced acc (mean)", "per seed", "x chance", "train s", "vs small_cnn"],
                    table_rows,
                ),
            }
        ],
        notes="The recipe is what `synthmed evaluate --tstr-archs vgg19` trains when no --tstr-weights-dir is "
        "given; plain VGG-19 has no batch norm.",
    )


if __name__ == "__main__":
    main()
