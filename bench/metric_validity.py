"""Metric validity: does the fidelity verdict react to degraded real images and pass clean held-out real images?

    .venv/bin/python bench/metric_validity.py bench/out/pneumonia/data bench/out/kermany64/data bench/out/brain64/data

For each prepared dataset: the `val` split is the held-out floor (what `synthmed evaluate` compares
against); a random part of the train split with val's class counts plays the synthetic set and the
rest of train is the reference, so all three come from one pool (a dataset's official test split
may come from elsewhere: PneumoniaMNIST's and Kermany's do, and read as shifted). The candidate is
clean (must read good), under each degradation of the ladder in synthmed.evaluate.planted (at the
middle strength or stronger must not read good), with one class dropped, and as 10 images repeated.
Every candidate is scored with the same code path as `synthmed evaluate` (low-level panels + the
domain encoder's semantic panel, MMD ratio to the floor), and with the previous instrument (FID of
the domain encoder's features, ratio to the floor, good under 1.5x) as the baseline.
Writes bench/results/metric_validity.json (rendered into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import table, write_result  # noqa: E402

from synthmed.data.arrays import ImageArrays, load_image_arrays  # noqa: E402
from synthmed.data.manifest import read_dataset_info  # noqa: E402
from synthmed.evaluate.encoder import EncoderSettings, load_or_train_domain_extractor  # noqa: E402
from synthmed.evaluate.fidelity import frechet_distance  # noqa: E402
from synthmed.evaluate.panel_distance import (  # noqa: E402
    PanelDistanceConfig,
    compute_panel_distances,
    fidelity_panels,
    panel_summary_status,
    worst_panel,
)
from synthmed.evaluate.planted import DEGRADATION_LADDER  # noqa: E402


def candidates(test: ImageArrays, rng: np.random.Generator) -> dict[str, tuple[str, int, ImageArrays]]:
    """name -> (family, strength, image set) for the clean set, every degradation and the two set-level failures."""
    out = {"held-out real (clean)": ("clean", -1, test)}
    for name, (family, strength, fn) in DEGRADATION_LADDER.items():
        out[name] = (
            family,
            strength,
            ImageArrays(pixels=fn(test.pixels, rng), labels=test.labels, ids=test.ids, classes=test.classes),
        )
    counts = np.bincount(test.labels, minlength=len(test.classes))
    dropped = int(np.argmin(np.where(counts > 0, counts, 10**9)))  # the smallest class present
    out[f"class '{test.classes[dropped]}' dropped"] = ("missing mode", 1, test.subset(test.labels != dropped))
    per_class = max(1, 10 // len(np.unique(test.labels)))
    keep = np.concatenate(
        [
            rng.choice(np.flatnonzero(test.labels == c), min(per_class, int((test.labels == c).sum())), replace=False)
            for c in np.unique(test.labels)
        ]
    )
    repeat = np.concatenate(
        [np.resize(keep[test.labels[keep] == c], int((test.labels == c).sum())) for c in np.unique(test.labels)]
    )
    out[f"{len(keep)} images repeated"] = ("repetition", 1, test.subset(np.sort(repeat)))
    return out


def evaluate_dataset(folder: Path, *, cache: Path, seed: int, max_images: int | None) -> list[list]:
    info = read_dataset_info(folder)
    kwargs = {"classes": list(info.classes), "size_px": info.image_size_px, "channels": info.channels}
    pool = load_image_arrays(folder, split="train", **kwargs)
    val = load_image_arrays(folder, split="val", **kwargs)
    rng = np.random.default_rng(seed)
    take = np.concatenate(
        [
            rng.choice(
                np.flatnonzero(pool.labels == c),
                min(int((val.labels == c).sum()), int((pool.labels == c).sum()) // 2),
                replace=False,
            )
            for c in range(len(pool.classes))
        ]
    )
    test = pool.subset(np.sort(take))
    train = pool.subset(np.setdiff1d(np.arange(len(pool)), take))
    if max_images and len(train) > max_images:
        train = train.subset(np.sort(rng.choice(len(train), max_images, replace=False)))
    extractor = load_or_train_domain_extractor(
        train, None, cache_dir=cache, settings=EncoderSettings(input_size_px=min(info.image_size_px, 64), seed=seed)
    )
    train_sem, val_sem = extractor(train.pixels), extractor(val.pixels)
    floor_fid = frechet_distance(train_sem, val_sem)
    rows = []
    for name, (family, strength, synth) in candidates(test, rng).items():
        started = time.perf_counter()
        synth_sem = extractor(synth.pixels)
        panels = fidelity_panels(
            train_pixels=train.pixels,
            heldout_pixels=val.pixels,
            synthetic_pixels=synth.pixels,
            semantic={"train": train_sem, "heldout": val_sem, "synthetic": synth_sem},
        )
        result = compute_panel_distances(
            panels=panels,
            train_labels=train.labels,
            heldout_labels=val.labels,
            synthetic_labels=synth.labels,
            classes=list(train.classes),
            config=PanelDistanceConfig(seed=seed, bootstrap_samples=0),
        )
        status = panel_summary_status(result)
        worst, worst_ratio = worst_panel(result)
        n = min(len(val), len(synth))
        sub = synth_sem[rng.choice(len(synth_sem), n, replace=False)] if len(synth_sem) > n else synth_sem
        old_ratio = frechet_distance(train_sem, sub) / floor_fid
        old_status = "good" if old_ratio < 1.5 else "fair" if old_ratio < 4 else "poor"
        ratios = {p: result["panels"][p]["overall"].get("ratio_to_floor", {}).get("value") for p in result["panels"]}
        expected = "good" if family == "clean" else ("not good" if strength >= 1 else "either")
        ok = (status == "good") if expected == "good" else (status != "good") if expected == "not good" else True
        rows.append(
            [
                info.name,
                name,
                expected,
                *[round(ratios[p], 2) if ratios[p] is not None else None for p in ("intensity", "texture", "semantic")],
                worst,
                status,
                "yes" if ok else "NO",
                round(old_ratio, 2),
                old_status,
                round(time.perf_counter() - started, 1),
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path, help="prepared datasets with train, val and test splits")
    parser.add_argument("--cache", type=Path, default=Path("bench/out/cache"))
    parser.add_argument("--max-train", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="metric_validity")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    rows = []
    for folder in args.datasets:
        rows += evaluate_dataset(folder, cache=args.cache, seed=args.seed, max_images=args.max_train)
    columns = [
        "dataset",
        "candidate set",
        "must read",
        "intensity x floor",
        "texture x floor",
        "semantic x floor",
        "worst panel",
        "verdict",
        "as required",
        "old: domain FID x floor",
        "old verdict",
        "time s",
    ]
    passed = sum(r[columns.index("as required")] == "yes" for r in rows)
    text = (
        f"{passed} of {len(rows)} candidate sets read as required. Ratios are MMD^2 to the real train images "
        f"over the floor's (held-out real images at the same n), summed over classes. The new verdict is the worst "
        f"of the panels: good up to the allowance (2x, or what real image sets of that size reach by chance if "
        f"more), fair up to twice that, poor beyond; a missing class is poor. 'old' is the previous "
        f"instrument (domain-encoder FID, good under 1.5x, fair under 4x). Floor: the val split; candidates: a "
        f"part of train with val's class counts, clean or degraded; reference: the rest of train (at most "
        f"{args.max_train} images)."
    )
    command = "OMP_NUM_THREADS=1 .venv/bin/python bench/metric_validity.py " + " ".join(map(str, args.datasets))
    path = write_result(
        args.name,
        title="Evaluate: metric validity (fidelity against planted degradations)",
        command=command,
        sections=[
            {
                "heading": "Ratio to the real-vs-real floor per panel, and verdict",
                "text": text,
                "table": table(columns, rows),
            }
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
