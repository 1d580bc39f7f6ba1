"""DPM-Solver++ at few steps vs DDPM at 1000 steps: per-class Frechet distance to real val, same seeds, same features.

    .venv/bin/python bench/sampler_quality.py \
        --reference bench/out/pneumonia_bal/samples_ddpm1000_normal bench/out/pneumonia_bal/samples_ddpm1000_pneumonia \
        --candidate bench/out/pneumonia_bal/samples_dpmpp20_g1

Both sets come from one model (`synthmed sample` with the same --seed-start), and only images present
in both (same class and seed, so the same starting noise) are scored. The feature network is the
domain encoder of bench/pneumonia_eval.py (a CNN classifier trained on real train, cached). The
ratio FD(candidate) / FD(reference) gets a 95% paired bootstrap interval (seeds resampled together),
so the verdict "within 10%" can be read against the noise of a few hundred images. The floor is real
train vs real val at the same n per class.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from result_file import command_line, table, write_result

from synthmed.data.arrays import ImageArrays, load_image_arrays
from synthmed.evaluate.encoder import load_or_train_domain_extractor
from synthmed.evaluate.fidelity import frechet_distance


def load_sets(folders: list[str], classes: list[str], size_px: int) -> ImageArrays:
    """Several sample folders as one ImageArrays (ids must not repeat)."""
    parts = [load_image_arrays(f, classes=classes, size_px=size_px, channels=1) for f in folders]
    ids = [i for p in parts for i in p.ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"image ids repeat across {folders}; pass folders with different classes or seeds.")
    return ImageArrays(
        np.concatenate([p.pixels for p in parts]), np.concatenate([p.labels for p in parts]), classes, ids
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", nargs="+", required=True, help="DDPM-1000 sample folder(s)")
    parser.add_argument("--candidate", nargs="+", required=True, help="fast-sampler folder(s), same seeds")
    parser.add_argument("--data", default="bench/out/pneumonia/data")
    parser.add_argument("--cache", default="bench/out/pneumonia/cache")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--out", default=None, help="JSON results path (default: beside the first candidate)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rng = np.random.default_rng(0)

    train = load_image_arrays(args.data, split="train")
    val = load_image_arrays(args.data, split="val", classes=train.classes)
    extractor = load_or_train_domain_extractor(train, val, cache_dir=args.cache)
    size = train.pixels.shape[-1]
    ref, cand = load_sets(args.reference, train.classes, size), load_sets(args.candidate, train.classes, size)
    common = sorted(set(ref.ids) & set(cand.ids))
    if not common:
        raise SystemExit(
            "the reference and candidate sets share no image ids (class + seed); sample with the same --seed-start."
        )
    ref = ref.subset(np.array([ref.ids.index(i) for i in common]))
    cand = cand.subset(np.array([cand.ids.index(i) for i in common]))
    ref_f, cand_f, val_f, train_f = (extractor(x.pixels) for x in (ref, cand, val, train))

    result = {
        "reference": args.reference,
        "candidate": args.candidate,
        "feature_network": extractor.layer,
        "bootstrap": args.bootstrap,
        "classes": {},
    }
    columns = ["class", "n (same seeds)", "FD DDPM-1000", "FD candidate", "ratio candidate / DDPM (95% CI)", "floor"]
    table_rows = []
    for c, name in enumerate(train.classes):
        rows = np.flatnonzero(ref.labels == c)
        if len(rows) < 2:
            continue
        v, t = val_f[val.labels == c], train_f[train.labels == c]
        fd_ref, fd_cand = frechet_distance(v, ref_f[rows]), frechet_distance(v, cand_f[rows])
        ratios = []
        for _ in range(args.bootstrap):
            pick = rng.choice(rows, size=len(rows), replace=True)
            ratios.append(frechet_distance(v, cand_f[pick]) / frechet_distance(v, ref_f[pick]))
        lo, hi = np.percentile(ratios, [2.5, 97.5])
        floor = frechet_distance(v, t[rng.choice(len(t), size=min(len(t), len(rows)), replace=False)])
        result["classes"][name] = {
            "n": int(len(rows)),
            "fd_reference": fd_ref,
            "fd_candidate": fd_cand,
            "ratio": fd_cand / fd_ref,
            "ratio_ci95": [float(lo), float(hi)],
            "fd_floor_train_vs_val": floor,
        }
        table_rows.append(
            [
                name,
                len(rows),
                round(fd_ref, 3),
                round(fd_cand, 3),
                f"{fd_cand / fd_ref:.2f} ({lo:.2f}-{hi:.2f})",
                round(floor, 3),
            ]
        )
        print(table_rows[-1])
    out = Path(args.out) if args.out else Path(args.candidate[0]) / "sampler_quality.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    text = (
        f"Frechet distance to the real val images of each class, features: {extractor.layer}; "
        f"{args.bootstrap} bootstrap resamples of the same-seed pairs. Reference: {', '.join(args.reference)}; "
        f"candidate: {', '.join(args.candidate)}."
    )
    write_result(
        "sampler_quality",
        title="Sampler quality: a fast sampler against DDPM at 1000 steps",
        command=command_line(),
        sections=[{"heading": "", "text": text, "table": table(columns, table_rows)}],
    )


if __name__ == "__main__":
    main()
