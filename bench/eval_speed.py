"""Speed of `synthmed evaluate`: 2,000 synthetic vs 5,000 real 64 px chest X-rays on this machine's CPU.

Real images: cxr_kermany_224 (train 5,000 of 5,216 + test 624) from ../shared/data, read where
they are (a manifest pointing at the files) and resized to 64 px on load. Synthetic stand-ins:
2,000 images made from real *held-out-free* training images as same-class mixtures (the average
of two training images plus noise, so not copies), with 40 planted training copies (flipped,
shifted, JPEG, noised) among them, so the run also shows what memorisation detection finds.

Baseline measured in the same run: a per-image Python loop of plain pixel correlation (no shifts,
no flips) over the 5,000 training images for 50 synthetic images, extrapolated to 2,000, against
the batched two-stage search (with 25 coarse shifts, flips and 81 fine shifts) over all 2,000.

    .venv/bin/python bench/eval_speed.py [--skip tstr,condition,explain] [--out bench/out/eval_speed]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "cxr_kermany_224"


def write_real(root: Path, *, n_train: int, seed: int) -> Path:
    """A prepared-dataset manifest over the Kermany files (train capped at n_train, val carved from train)."""
    from synthmed.data.manifest import DatasetInfo, write_dataset_info, write_manifest

    rng = np.random.default_rng(seed)
    classes = ["NORMAL", "PNEUMONIA"]
    train = list(rng.permutation(sorted((SHARED / "train").glob("*/*"))))
    chosen = {"train": train[:n_train], "val": train[n_train:], "test": sorted((SHARED / "test").glob("*/*"))}
    rows = [
        {
            "image_id": f"{split}-{p.stem}",
            "path": str(p),
            "split": split,
            "label": p.parent.name,
            "label_idx": classes.index(p.parent.name),
        }
        for split, paths in chosen.items()
        for p in paths
    ]
    frame = pd.DataFrame(rows)
    write_manifest(frame, root)
    write_dataset_info(
        DatasetInfo(
            name="cxr_kermany_224@64",
            modality="chest x-ray",
            channels=1,
            image_size_px=64,
            classes=classes,
            split_counts=frame["split"].value_counts().to_dict(),
        ),
        root,
    )
    return root


def write_synthetic(folder: Path, real: Path, *, count: int, planted: int, seed: int) -> list[str]:
    """Same-class mixtures of training images plus `planted` altered training copies; returns the planted ids."""
    from synthmed.data.arrays import load_image_arrays

    rng = np.random.default_rng(seed)
    train = load_image_arrays(real, split="train", size_px=64, channels=1)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, planted_ids = [], []
    for k in range(count):
        label = int(rng.integers(0, len(train.classes)))
        members = np.flatnonzero(train.labels == label)
        if k < planted:
            image = train.pixels[rng.choice(members), 0]
            kind = ("flip", "shift", "jpeg", "noise")[k % 4]
            if kind == "flip":
                image = image[:, ::-1]
            elif kind == "shift":
                image = np.roll(image, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
            elif kind == "jpeg":
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=70)
                image = np.asarray(Image.open(buffer))
            else:
                image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255)
            planted_ids.append(f"syn{k:05d}")
        else:
            a, b = train.pixels[rng.choice(members, 2, replace=False), 0].astype(float)
            image = np.clip(0.5 * a + 0.5 * b + rng.normal(0, 4, a.shape), 0, 255)
        image_id = f"syn{k:05d}"
        Image.fromarray(np.ascontiguousarray(image).astype(np.uint8)).save(folder / "images" / f"{image_id}.png")
        rows.append(
            {
                "image_id": image_id,
                "path": f"images/{image_id}.png",
                "label": train.classes[label],
                "label_idx": label,
                "synthetic": 1,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return planted_ids


def loop_baseline(train: np.ndarray, queries: np.ndarray) -> float:
    """Seconds per query of a per-image Python loop of plain normalised pixel correlation."""
    flat = train.reshape(len(train), -1).astype(np.float32)
    flat = (flat - flat.mean(1, keepdims=True)) / (flat.std(1, keepdims=True) + 1e-6)
    started = time.perf_counter()
    for q in queries.reshape(len(queries), -1).astype(np.float32):
        q = (q - q.mean()) / (q.std() + 1e-6)
        best = -1.0
        for row in flat:
            best = max(best, float(row @ q) / len(q))
    return (time.perf_counter() - started) / len(queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "eval_speed")
    parser.add_argument("--skip", default="", help="parts to skip (as synthmed evaluate --skip)")
    parser.add_argument("--tstr-seeds", default="0")
    parser.add_argument("--tstr-epochs", default="5")
    parser.add_argument("--tstr-max-train", default="2000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: this benchmark needs the shared Kermany chest X-rays.", file=sys.stderr)
        return 2
    from synthmed.cli import main as synthmed
    from synthmed.data.arrays import load_image_arrays
    from synthmed.evaluate.memorisation import MemorisationConfig, build_pixel_index, nearest_by_pixels

    real = write_real(args.out / "real", n_train=5000, seed=args.seed)
    planted = write_synthetic(args.out / "synthetic", real, count=2000, planted=40, seed=args.seed)
    eval_dir = args.out / "eval"
    import shutil

    shutil.rmtree(args.out / "cache", ignore_errors=True)  # measure the domain encoder's training too
    started = time.perf_counter()
    code = synthmed(
        [
            "evaluate",
            "--real",
            str(real),
            "--synthetic",
            str(args.out / "synthetic"),
            "--out",
            str(eval_dir),
            "--cache-dir",
            str(args.out / "cache"),
            "--skip",
            args.skip,
            "--tstr-seeds",
            args.tstr_seeds,
            "--tstr-epochs",
            args.tstr_epochs,
            "--tstr-max-train",
            args.tstr_max_train,
            "--seed",
            str(args.seed),
        ]
    )
    wall_s = time.perf_counter() - started
    metrics = json.loads((eval_dir / "metrics.json").read_text())

    # Baseline vs batched nearest-neighbour search, same machine, same run.
    train = load_image_arrays(real, split="train", size_px=64, channels=1).pixels
    synth = load_image_arrays(args.out / "synthetic", classes=["NORMAL", "PNEUMONIA"], size_px=64, channels=1).pixels
    loop_s_per_query = loop_baseline(train, synth[:50])
    config = MemorisationConfig()
    t0 = time.perf_counter()
    nearest_by_pixels(synth, build_pixel_index(train, config=config), config=config)
    batched_s = time.perf_counter() - t0

    flagged = pd.read_csv(eval_dir / "memorisation" / "nearest.csv", dtype={"synthetic_id": str})
    caught = flagged[flagged["synthetic_id"].isin(planted)]["flagged"].mean()
    false_flags = flagged[~flagged["synthetic_id"].isin(planted)]["flagged"].mean()
    encoder_training = metrics["fidelity"].get("features", {}).get("encoder_training", {})
    summary = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "exit_code": code,
        "n_real_train": metrics["inputs"]["counts"]["real_train"],
        "n_heldout": metrics["inputs"]["counts"]["real_test"],
        "n_synthetic": metrics["inputs"]["counts"]["synthetic"],
        "wall_s": round(wall_s, 1),
        "budget_s": 600,
        "wall_over_budget": round(wall_s / 600, 3),
        "timings_s": metrics["timings_s"],
        "nn_loop_baseline_s_for_2000": round(loop_s_per_query * len(synth), 1),
        "nn_batched_s_for_2000": round(batched_s, 1),
        "nn_speedup": round(loop_s_per_query * len(synth) / batched_s, 1),
        "planted_copies_flagged": float(caught),
        "mixtures_flagged": float(false_flags),
        "encoder_training_s": encoder_training.get("train_duration_s"),
        "encoder_cached": encoder_training.get("cached"),
        "fid": metrics["fidelity"].get("overall", {}).get("synthetic", {}).get("fid"),
        "fid_floor": metrics["fidelity"].get("overall", {}).get("real_floor", {}).get("fid"),
        "statuses": {
            p: metrics[p].get("status", "ok")
            for p in ("fidelity", "diversity", "memorisation", "usefulness", "condition_fidelity", "explanations")
        },
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
