"""Save a grid of phantom radiographs (one row per condition) to bench/results/data_phantom_grid.png (+ .json).

Usage: .venv/bin/python bench/data_phantom_grid.py [--size 128] [--per-row 6] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from result_file import command_line, write_result

from synthmed.data.phantom import CONDITIONS, sample_phantom_params
from synthmed.data.phantom_render import render_phantom

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--per-row", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data_phantom_grid.png")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [
        np.concatenate(
            [render_phantom(sample_phantom_params(condition, rng), size_px=args.size) for _ in range(args.per_row)],
            axis=1,
        )
        for condition in CONDITIONS
    ]
    Image.fromarray(np.concatenate(rows, axis=0), "L").save(args.out, optimize=True)
    print(f"{args.out}: rows = {', '.join(CONDITIONS)}")
    text = (
        f"{args.per_row} phantoms per condition at {args.size} px (seed {args.seed}); rows, top to bottom: "
        f"{', '.join(c.replace('_', ' ') for c in CONDITIONS)}."
    )
    section = {"heading": "", "text": text}
    if args.out.resolve().parent == (ROOT / "bench" / "results").resolve():
        section["image"] = args.out.name
    write_result(
        "data_phantom_grid", title="The built-in chest-radiograph phantom", command=command_line(), sections=[section]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
