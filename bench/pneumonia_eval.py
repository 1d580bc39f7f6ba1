"""Score synthetic PneumoniaMNIST sets: per-class Frechet distance to real val in a domain classifier's features.

    .venv/bin/python bench/pneumonia_eval.py bench/out/pneumonia/samples_dpmpp20_g1 [more sample folders]

The feature network is synthmed.evaluate's domain encoder (a small CNN classifier trained on the real
train split, cached under bench/out/pneumonia/cache). The floor is real train vs real val with the
same number of images per class as the synthetic set (seeded subsample), so the sample-size bias of
the Frechet distance is the same on both sides; it is averaged over --floor-draws subsamples (the same
draws for every folder), because one subsample of a few hundred images moves the floor by up to 2x.
Writes a JSON next to each sample folder and, with --grid PATH, a grid of the last folder's images
(rows: real normal, synthetic normal, real pneumonia, synthetic pneumonia).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from synthmed.data.arrays import load_image_arrays
from synthmed.evaluate.encoder import load_or_train_domain_extractor
from synthmed.evaluate.fidelity import frechet_distance
from synthmed.models.preview import grid_image, save_png_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="+")
    parser.add_argument("--data", default="bench/out/pneumonia/data")
    parser.add_argument("--cache", default="bench/out/pneumonia/cache")
    parser.add_argument("--grid", default=None, help="write a real-vs-synthetic grid PNG of the last folder here")
    parser.add_argument(
        "--floor-draws", type=int, default=10, help="the floor is the mean over this many random train subsamples"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    train = load_image_arrays(args.data, split="train")
    val = load_image_arrays(args.data, split="val", classes=train.classes)
    extractor = load_or_train_domain_extractor(train, val, cache_dir=args.cache)
    train_f, val_f = extractor(train.pixels), extractor(val.pixels)
    for folder in args.samples:
        synth = load_image_arrays(folder, classes=train.classes, size_px=train.pixels.shape[-1], channels=1)
        synth_f = extractor(synth.pixels)
        result = {
            "samples": folder,
            "feature_network": extractor.layer,
            "encoder_val_accuracy": extractor.record.get("val_accuracy"),
            "classes": {},
        }
        rng = np.random.default_rng(0)  # per folder: the same n gets the same floor, whatever the folder order
        for c, name in enumerate(train.classes):
            s, v, t = synth_f[synth.labels == c], val_f[val.labels == c], train_f[train.labels == c]
            if len(s) < 2:
                continue
            n_floor = min(len(t), len(s))
            floors = [
                frechet_distance(v, t[rng.choice(len(t), size=n_floor, replace=False)]) for _ in range(args.floor_draws)
            ]
            fd, floor = frechet_distance(v, s), float(np.mean(floors))
            result["classes"][name] = {
                "n_synthetic": int(len(s)),
                "n_val": int(len(v)),
                "n_train_floor": n_floor,
                "fd_synthetic_vs_val": fd,
                "fd_train_vs_val_floor": floor,
                "fd_floor_draws": floors,
                "ratio_to_floor": fd / floor,
            }
        Path(folder, "pneumonia_eval.json").write_text(json.dumps(result, indent=2))
        print(f"\n{folder}")
        print("| class | n synth | FD synth vs val | FD train vs val (floor) | ratio |")
        print("|---|---|---|---|---|")
        for name, r in result["classes"].items():
            print(
                f"| {name} | {r['n_synthetic']} | {r['fd_synthetic_vs_val']:.2f} | "
                f"{r['fd_train_vs_val_floor']:.2f} | {r['ratio_to_floor']:.2f}x |"
            )
        if args.grid and folder == args.samples[-1]:
            rows = []
            for c in range(len(train.classes)):
                if not (synth.labels == c).any():
                    continue
                rows.append(train.pixels[train.labels == c][:12])
                rows.append(synth.pixels[synth.labels == c][:12])
            grid = grid_image(rows)
            save_png_atomic(grid.resize((grid.width * 3, grid.height * 3)), args.grid)


if __name__ == "__main__":
    main()
