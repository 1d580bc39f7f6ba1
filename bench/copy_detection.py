"""Copy detection: planted transformed copies of training images flagged, held-out real images not.

    .venv/bin/python bench/copy_detection.py bench/out/pneumonia/data bench/out/kermany64/data bench/out/brain64/data

For each prepared dataset: training images (at most --max-train) are the index; --per-family training
images per transform family are copied with a transform drawn at random from the ranges in
synthmed.evaluate.planted.random_copy_transforms (not from the search grid: rotations are continuous,
zooms, shifts, gamma, blur, noise, JPEG quality all drawn uniformly, and combined); held-out real images
(val and test) are split in two: one half calibrates the copy threshold as `synthmed evaluate` does,
the other half measures the false-positive rate. Held-out images that are near-duplicates of a training
image (synthmed's shared definition, mirrored copies included) are leakage: they are left out of both
halves and counted; calibration images far closer to a training image than the rest (suspected leaks,
synthmed.evaluate.memorisation.suspected_leaks) are left out of the calibration as `synthmed evaluate`
does, while the false-positive half keeps all of its images. Two detectors: synthmed's copy search
(flips x rotations x zooms, then shifts, fitting grey-level curves and slight blur) and the previous
detector, a vectorised correlation search over flips and shifts only (the strongest simple alternative).
Writes bench/results/copy_detection.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_pixel_search import BaselineConfig, build_pixel_index, nearest_by_pixels  # noqa: E402
from result_file import table, write_result  # noqa: E402

from synthmed.data.arrays import load_image_arrays  # noqa: E402
from synthmed.data.manifest import read_dataset_info  # noqa: E402
from synthmed.data.quality import NEAR_DUPLICATE_CORRELATION, near_duplicates_of  # noqa: E402
from synthmed.evaluate.copy_search import CopySearchConfig, build_copy_index, search_copies  # noqa: E402
from synthmed.evaluate.memorisation import MemorisationConfig, calibrate_threshold, suspected_leaks  # noqa: E402
from synthmed.evaluate.planted import COPY_FAMILIES, random_copy_transforms  # noqa: E402


def detectors(train: np.ndarray, margin: float, search: dict):
    """name -> (build seconds, search function returning similarities)."""
    started = time.perf_counter()
    config = CopySearchConfig(**search)
    index = build_copy_index(train, config=config)
    new_build = time.perf_counter() - started
    started = time.perf_counter()
    old_config = BaselineConfig()
    old_index = build_pixel_index(train, config=old_config)
    old_build = time.perf_counter() - started
    return {
        "synthmed copy search": (new_build, lambda q: search_copies(q, index, config=config)),
        "flips + shifts only (previous)": (old_build, lambda q: nearest_by_pixels(q, old_index, config=old_config)),
    }


def run_dataset(
    folder: Path,
    *,
    per_family: int,
    max_train: int,
    max_heldout: int,
    quantile: float,
    margin: float,
    seed: int,
    search: dict,
    baseline: bool,
) -> list[list]:
    info = read_dataset_info(folder)
    kwargs = {"classes": list(info.classes), "size_px": info.image_size_px, "channels": info.channels}
    rng = np.random.default_rng(seed)
    train = load_image_arrays(folder, split="train", **kwargs).pixels
    if len(train) > max_train:
        train = train[np.sort(rng.choice(len(train), max_train, replace=False))]
    held = np.concatenate([load_image_arrays(folder, split=s, **kwargs).pixels for s in ("val", "test")])
    best, _ = near_duplicates_of(held, train)
    leaked = best >= NEAR_DUPLICATE_CORRELATION
    clean = held[~leaked][rng.permutation(int((~leaked).sum()))][:max_heldout]
    calibration, fpr_set = clean[: len(clean) // 2], clean[len(clean) // 2 :]
    planted = {
        family: random_copy_transforms(train[rng.choice(len(train), per_family, replace=False)], rng, family=family)
        for family in COPY_FAMILIES
    }
    rows = []
    for name, (build_s, search_fn) in detectors(train, margin, search).items():
        if not baseline and "previous" in name:
            continue
        started = time.perf_counter()
        calibration_similarity = search_fn(calibration)["similarity"]
        suspect = suspected_leaks(calibration_similarity)  # left out of the calibration, as `synthmed evaluate` does
        threshold = calibrate_threshold(calibration_similarity[~suspect], quantile=quantile, margin=margin)
        fpr = float(np.mean(search_fn(fpr_set)["similarity"] >= threshold))
        recalls = {
            family: float(np.mean(search_fn(copies)["similarity"] >= threshold)) for family, copies in planted.items()
        }
        seconds = time.perf_counter() - started + build_s
        n_queries = len(calibration) + len(fpr_set) + per_family * len(COPY_FAMILIES)
        overall = float(np.mean(list(recalls.values())))
        rows.append(
            [
                info.name,
                name,
                len(train),
                int(leaked.sum()),
                int(suspect.sum()),
                len(fpr_set),
                round(threshold, 4),
                f"{fpr:.1%}",
                f"{overall:.1%}",
                *[f"{recalls[f]:.0%}" for f in COPY_FAMILIES],
                round(seconds, 1),
                round(1000 * seconds / n_queries, 2),
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--per-family", type=int, default=40)
    parser.add_argument("--max-train", type=int, default=5000)
    parser.add_argument(
        "--max-heldout", type=int, default=100_000, help="clean held-out images used (calibration + FP)"
    )
    parser.add_argument("--quantile", type=float, default=MemorisationConfig().calibration_quantile)
    parser.add_argument("--margin", type=float, default=MemorisationConfig().margin)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="copy_detection")
    parser.add_argument("--search", type=json.loads, default={}, help="CopySearchConfig fields as JSON (a sweep)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="datasets measured at once (one process and thread each)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = partial(
        run_dataset,
        per_family=args.per_family,
        max_train=args.max_train,
        max_heldout=args.max_heldout,
        quantile=args.quantile,
        margin=args.margin,
        seed=args.seed,
        search=args.search,
        baseline=not args.no_baseline,
    )
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        rows = [row for rows in pool.map(run, args.datasets) for row in rows]
    columns = [
        "dataset",
        "detector",
        "train images",
        "held-out leaked (excluded)",
        "calibration suspected leaks (excluded)",
        "held-out tested",
        "threshold",
        "false positives",
        "recall (all)",
        *COPY_FAMILIES,
        "time s",
        "ms per query",
    ]
    text = (
        f"Threshold: the {args.quantile:.0%} quantile of the calibration half's nearest-train similarity, moved "
        f"{args.margin:g} of the way to 1. Targets: recall >= 95% with false positives <= 1%. {args.per_family} "
        f"planted copies per family, transforms drawn at random (seed {args.seed}). Time: index build plus all "
        f"searches, one thread."
    )
    command = (
        f"OMP_NUM_THREADS=1 .venv/bin/python bench/copy_detection.py {' '.join(map(str, args.datasets))} "
        f"--per-family {args.per_family} --max-heldout {args.max_heldout} --jobs {args.jobs}"
    )
    path = write_result(
        args.name,
        title="Evaluate: copy detection against transformed copies",
        command=command,
        sections=[
            {
                "heading": "Recall per transform family and false positives on held-out real",
                "text": text,
                "table": table(columns, rows),
            }
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
