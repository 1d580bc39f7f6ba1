"""Copy detection: planted transformed copies of training images flagged, held-out real images not.

    .venv/bin/python bench/copy_detection.py bench/out/pneumonia/data bench/out/kermany64/data bench/out/brain64/data

For each prepared dataset: training images (at most --max-train) are the index; --per-family training
images per transform family are copied with a transform drawn at random from the ranges in
synthmed.evaluate.planted.random_copy_transforms (not from the search grid: rotations are continuous,
zooms, shifts, gamma, blur, noise, JPEG quality all drawn uniformly, and combined); held-out real images
(val and test) are split in two: one half calibrates the copy threshold as `synthmed evaluate` does,
the other half measures the false-positive rate, as it is and with noise of --noise-grey grey levels added
(a noisy generator's output must not be called a copy because the search discounts noise). Held-out images
that are near-duplicates of a training image (synthmed's shared definition, mirrored copies included) are
leakage: they are left out of both halves and counted; calibration images far closer to a training image than
the rest (suspected leaks, synthmed.evaluate.memorisation.suspected_leaks) are left out of the calibration as
`synthmed evaluate` does, while the false-positive half keeps all of its images. Every flagged held-out image is
drawn beside its match (bench/results/copy_detection_flagged_DATASET.png) so that a reader can audit them.
Two detectors: synthmed's copy search (flips x rotations x zooms, then shifts, fitting grey-level curves and
slight blur, noise discounted) and the previous detector, a vectorised correlation search over flips and shifts
only (the strongest simple alternative). Queries are searched in --jobs worker processes (one thread each);
time is CPU seconds summed over workers. Writes bench/results/copy_detection.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_pixel_search import BaselineConfig, build_pixel_index, nearest_by_pixels  # noqa: E402
from result_file import RESULTS_DIR, command_line, table, write_result  # noqa: E402

from synthmed.data.arrays import load_image_arrays  # noqa: E402
from synthmed.data.manifest import read_dataset_info  # noqa: E402
from synthmed.data.quality import NEAR_DUPLICATE_CORRELATION, near_duplicates_of  # noqa: E402
from synthmed.evaluate.copy_search import CopySearchConfig, build_copy_index, search_copies  # noqa: E402
from synthmed.evaluate.memorisation import MemorisationConfig, calibrate_threshold, suspected_leaks  # noqa: E402
from synthmed.evaluate.planted import COPY_FAMILIES, add_noise, random_copy_transforms  # noqa: E402

_WORKER: dict = {}


def _start_worker(train: np.ndarray, search: dict) -> None:
    torch.set_num_threads(1)
    _WORKER["config"] = CopySearchConfig(**search)
    _WORKER["index"] = build_copy_index(train, config=_WORKER["config"])


def _search_chunk(queries: np.ndarray) -> tuple[dict, float]:
    started = time.process_time()
    found = search_copies(queries, _WORKER["index"], config=_WORKER["config"])
    return found, time.process_time() - started


def copy_search_similarity(train: np.ndarray, queries: np.ndarray, *, search: dict, jobs: int) -> tuple[dict, float]:
    """synthmed's copy search of every query, in `jobs` processes; (results, CPU seconds incl. index builds)."""
    started = time.process_time()
    _start_worker(train, search)
    build_s = time.process_time() - started
    chunks = np.array_split(queries, max(1, min(len(queries), 4 * jobs)))
    with ProcessPoolExecutor(max_workers=jobs, initializer=_start_worker, initargs=(train, search)) as pool:
        parts = list(pool.map(_search_chunk, chunks))
    found = {key: np.concatenate([p[0][key] for p in parts]) for key in parts[0][0]}
    return found, build_s * (1 + jobs) + sum(p[1] for p in parts)


def previous_similarity(train: np.ndarray, queries: np.ndarray) -> tuple[dict, float]:
    """The previous detector (flips and shifts only), vectorised, one process."""
    started = time.process_time()
    config = BaselineConfig()
    found = nearest_by_pixels(queries, build_pixel_index(train, config=config), config=config)
    return found, time.process_time() - started


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half / (1 + z * z / n)), min(1.0, centre + half / (1 + z * z / n)))


def rate(hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"{hits}/{n} = {hits / max(n, 1):.1%} [{low:.1%}, {high:.1%}]"


def audit_sheet(name: str, queries: np.ndarray, train: np.ndarray, found: dict, flagged: np.ndarray) -> str | None:
    """Flagged held-out images beside their matched training images: bench/results/copy_detection_flagged_NAME.png."""
    rows = []
    for i in np.flatnonzero(flagged)[:24]:
        pair = [np.asarray(x, dtype=np.uint8).mean(axis=0) for x in (queries[i], train[found["train_index"][i]])]
        gap = np.full((pair[0].shape[0], 4), 255.0)
        rows.append(np.concatenate([pair[0], gap, pair[1]], axis=1))
    if not rows:
        return None
    scale = max(1, 128 // rows[0].shape[0])
    label_px = 14
    sheet = Image.new("L", (rows[0].shape[1] * scale, len(rows) * (rows[0].shape[0] * scale + label_px)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (row, i) in enumerate(zip(rows, np.flatnonzero(flagged))):
        top = k * (rows[0].shape[0] * scale + label_px)
        draw.text((2, top), f"held-out (left) vs train, similarity {found['similarity'][i]:.4f}", fill=0)
        image = Image.fromarray(row.astype(np.uint8)).resize((row.shape[1] * scale, row.shape[0] * scale))
        sheet.paste(image, (0, top + label_px))
    file = f"copy_detection_flagged_{name}.png"
    sheet.save(RESULTS_DIR / file)
    return file


def run_dataset(folder: Path, args: argparse.Namespace) -> tuple[list[list], dict | None]:
    info = read_dataset_info(folder)
    kwargs = {"classes": list(info.classes), "size_px": info.image_size_px, "channels": info.channels}
    rng = np.random.default_rng(args.seed)
    train = load_image_arrays(folder, split="train", **kwargs).pixels
    if len(train) > args.max_train:
        train = train[np.sort(rng.choice(len(train), args.max_train, replace=False))]
    held = np.concatenate([load_image_arrays(folder, split=s, **kwargs).pixels for s in ("val", "test")])
    best, _ = near_duplicates_of(held, train)
    leaked = best >= NEAR_DUPLICATE_CORRELATION
    clean = held[~leaked][rng.permutation(int((~leaked).sum()))][: args.max_heldout]
    calibration, fpr_set = clean[: len(clean) // 2], clean[len(clean) // 2 :]
    noisy_fpr = add_noise(fpr_set, args.noise_grey, rng)
    sources = {family: rng.choice(len(train), args.per_family, replace=False) for family in COPY_FAMILIES}
    planted = {family: random_copy_transforms(train[i], rng, family=family) for family, i in sources.items()}
    parts = {"calibration": calibration, "fpr": fpr_set, "noisy": noisy_fpr} | planted
    queries = np.concatenate(list(parts.values()))
    bounds = np.cumsum([0] + [len(p) for p in parts.values()])
    detectors = {
        "synthmed copy search": lambda: copy_search_similarity(train, queries, search=args.search, jobs=args.jobs),
        "flips + shifts only (previous)": lambda: previous_similarity(train, queries),
    }
    rows, image = [], None
    for name, detect in detectors.items():
        if args.no_baseline and "previous" in name:
            continue
        wall = time.perf_counter()
        found, cpu_s = detect()
        wall_s = time.perf_counter() - wall
        sim = {key: found["similarity"][a:b] for key, a, b in zip(parts, bounds[:-1], bounds[1:])}
        suspect = suspected_leaks(sim["calibration"])  # left out of the calibration, as `synthmed evaluate` does
        threshold = calibrate_threshold(sim["calibration"][~suspect], quantile=args.quantile, margin=args.margin)
        flagged = sim["fpr"] >= threshold
        hits = {family: int((sim[family] >= threshold).sum()) for family in COPY_FAMILIES}
        if "previous" not in name:
            fpr_found = {key: values[bounds[1] : bounds[2]] for key, values in found.items()}
            image = audit_sheet(info.name, fpr_set, train, fpr_found, flagged)
        rows.append(
            [
                info.name,
                name,
                len(train),
                int(leaked.sum()),
                int(suspect.sum()),
                round(threshold, 4),
                rate(int(flagged.sum()), len(fpr_set)),
                rate(int((sim["noisy"] >= threshold).sum()), len(fpr_set)),
                rate(sum(hits.values()), args.per_family * len(COPY_FAMILIES)),
                *[f"{hits[f] / args.per_family:.0%}" for f in COPY_FAMILIES],
                round(1000 * cpu_s / len(queries), 1),
                round(wall_s, 1),
            ]
        )
        print(rows[-1], flush=True)
    return rows, ({"heading": f"Flagged held-out images: {info.name}", "image": image} if image else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--per-family", type=int, default=40)
    parser.add_argument("--max-train", type=int, default=5000)
    parser.add_argument(
        "--max-heldout", type=int, default=100_000, help="clean held-out images used (calibration + FP)"
    )
    parser.add_argument("--noise-grey", type=float, default=8.0, help="noise added to the FP half (second FP column)")
    parser.add_argument("--quantile", type=float, default=MemorisationConfig().calibration_quantile)
    parser.add_argument("--margin", type=float, default=MemorisationConfig().margin)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="copy_detection")
    parser.add_argument("--search", type=json.loads, default={}, help="CopySearchConfig fields as JSON (a sweep)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the copy search (one thread each)")
    parser.add_argument("--copy-to", type=Path, default=None, help="also copy the result files here (e.g. $OUT)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, images = [], []
    for folder in args.datasets:
        dataset_rows, image = run_dataset(folder, args)
        rows += dataset_rows
        images += [image] if image else []
    columns = [
        "dataset",
        "detector",
        "train images",
        "held-out leaked (excluded)",
        "calibration suspected leaks (excluded)",
        "threshold",
        "false positives [95% CI]",
        f"false positives, held-out + noise {args.noise_grey:g} [95% CI]",
        "recall (all) [95% CI]",
        *COPY_FAMILIES,
        "CPU ms per query",
        "wall s",
    ]
    text = (
        f"Threshold: the {args.quantile:.0%} quantile of the calibration half's nearest-train similarity, moved "
        f"{args.margin:g} of the way to 1. Targets: recall >= 95% with false positives <= 1%. {args.per_family} "
        f"planted copies per family, transforms drawn at random (seed {args.seed}); intervals are 95% Wilson. "
        f"Time: CPU seconds per query (index builds included), summed over {args.jobs} worker processes of one "
        f"thread each; wall seconds as run."
    )
    path = write_result(
        args.name,
        title="Evaluate: copy detection against transformed copies",
        command=f"OMP_NUM_THREADS=1 {command_line()}",
        sections=[
            {
                "heading": "Recall per transform family and false positives on held-out real",
                "text": text,
                "table": table(columns, rows),
            },
            *images,
        ],
    )
    print(f"wrote {path}")
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        for file in [path, *(RESULTS_DIR / i["image"] for i in images)]:
            (args.copy_to / file.name).write_bytes(file.read_bytes())


if __name__ == "__main__":
    main()
