"""Speed of `prepare` against a bare PIL loop on the same files, and of the phantom renderer.

Usage: .venv/bin/python bench/data_speed.py [--n-files 1000] [--size 64] [--workers 2]
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

    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average before: "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
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
        print(
            f"prepare {len(files)} Kermany JPEGs -> {args.size} px: baseline PIL loop {len(files) / base_s:.0f} img/s, "
            f"synthmed prepare ({args.workers} workers, with hashing, duplicates, card) {len(files) / ours_s:.0f} img/s, "
            f"ratio {base_s / ours_s:.2f}"
        )
    rng = np.random.default_rng(0)
    params = [sample_phantom_params(CONDITIONS[k % 4], rng) for k in range(40)]
    for size_px in (64, 256):
        render_phantom(params[0], size_px=size_px)
        started = time.perf_counter()
        for p in params:
            render_phantom(p, size_px=size_px)
        print(
            f"phantom render {size_px} px: {(time.perf_counter() - started) / len(params) * 1000:.1f} ms/image (1 process)"
        )
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
