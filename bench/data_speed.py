"""Speed of `prepare` against a bare PIL loop on the same files, and of the phantom renderer.

Usage: .venv/bin/python bench/data_speed.py [--n-files 1000] [--size 64] [--workers 2]
Writes bench/results/data_speed.json. Without ../shared/data (Kermany) only the phantom part runs,
and the prepare figures of the last run that had the data are carried over, labelled as such.
The baseline opens each file, converts it to L, resizes it and saves a PNG in one process: no
hashing, no duplicate search, no card. The ratio is prepare's images/s over the baseline's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from result_file import command_line, earlier_sections, table, write_result

ROOT = Path(__file__).resolve().parents[1]
KERMANY = ROOT.parent / "shared" / "data" / "cxr_kermany_224"


def linked_subset(n_files: int, folder: Path) -> list[Path]:
    """Symlink the first n files of each Kermany train class into folder/CLASS (no copies)."""
    files = []
    for label in ("NORMAL", "PNEUMONIA"):
        (folder / label).mkdir(parents=True)
        for path in sorted((KERMANY / "train" / label).iterdir())[: n_files // 2]:
            (folder / label / path.name).symlink_to(path)
            files.append(folder / label / path.name)
    return files


def baseline(files: list[Path], out: Path, size_px: int) -> float:
    out.mkdir()
    started = time.perf_counter()
    for k, path in enumerate(files):
        with Image.open(path) as img:
            img.convert("L").resize((size_px, size_px), Image.Resampling.LANCZOS).save(out / f"{k:06d}.png")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from synthmed.data.phantom import CONDITIONS, sample_phantom_params
    from synthmed.data.phantom_render import render_phantom
    from synthmed.data.prepare import PrepareConfig, prepare_dataset

    load = os.getloadavg()
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average before: {load[0]:.1f}")
    sections = []
    if KERMANY.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            files = linked_subset(args.n_files, Path(tmp) / "src")
            base_s = baseline(files, Path(tmp) / "base", args.size)
            started = time.perf_counter()
            prepare_dataset(
                Path(tmp) / "src",
                out_dir=Path(tmp) / "prepared",
                config=PrepareConfig(size_px=args.size, workers=args.workers),
            )
            ours_s = time.perf_counter() - started
        rows = [
            ["baseline: PIL open, grey, resize, save (1 process)", round(len(files) / base_s)],
            [f"synthmed prepare ({args.workers} workers; hashing, duplicates, card)", round(len(files) / ours_s)],
        ]
        sections.append(
            {
                "heading": f"Prepare throughput: {len(files)} Kermany JPEGs to {args.size} px",
                "text": f"Ratio prepare / baseline: {base_s / ours_s:.2f}.",
                "table": table(["pipeline", "images/s"], rows),
            }
        )
    else:
        sections += [s for s in earlier_sections("data_speed") if "Prepare throughput" in s.get("heading", "")]
    rng = np.random.default_rng(0)
    params = [sample_phantom_params(CONDITIONS[k % 4], rng) for k in range(40)]
    rows = []
    for size_px in (64, 256):
        render_phantom(params[0], size_px=size_px)
        started = time.perf_counter()
        for p in params:
            render_phantom(p, size_px=size_px)
        rows.append([f"{size_px} px", round((time.perf_counter() - started) / len(params) * 1000, 1)])
        print(rows[-1])
    sections.insert(
        0,
        {
            "heading": "Phantom rendering",
            "text": f"40 phantoms, all four conditions, one process; load average {load[0]:.1f} on 2 cores before.",
            "table": table(["size", "ms/image"], rows),
        },
    )
    write_result("data_speed", title="Data stage speed", command=command_line(), sections=sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
