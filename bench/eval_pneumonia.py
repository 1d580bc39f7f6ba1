"""Evaluate the pneumonia benchmark run's samples (bench/out/pneumonia/) against its prepared dataset.

Finds the prepared dataset (a folder with dataset.json) and the synthetic set (a folder whose
manifest.csv has a `synthetic` column) under bench/out/pneumonia/, runs `synthmed evaluate` on
them, and prints the headline figures. As a baseline from the same run it also evaluates a
"perfect generator" stand-in: real validation images posing as synthetic (what an ideal model would score).

    .venv/bin/python bench/eval_pneumonia.py [--run bench/out/pneumonia] [--skip explain]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def find_sets(run: Path) -> tuple[Path, Path]:
    """The prepared dataset and the synthetic set under `run`."""
    datasets = sorted(p.parent for p in run.rglob("dataset.json"))
    synthetic = [
        p.parent
        for p in sorted(run.rglob("manifest.csv"))
        if "synthetic" in pd.read_csv(p, nrows=1).columns
        and p.parent not in datasets
        and (run / "eval") not in p.parents
    ]  # not this script's own stand-in set
    if not datasets or not synthetic:
        raise SystemExit(
            f"{run} lacks a prepared dataset ({len(datasets)} found) or a synthetic set "
            f"({len(synthetic)} found); has the pneumonia benchmark run finished?"
        )
    return datasets[0], synthetic[0]


def stand_in(real: Path, out: Path) -> Path:
    """Real validation images as a synthetic set: the score of a generator that matches the data perfectly."""
    frame = pd.read_csv(real / "manifest.csv", dtype={"image_id": str})
    frame = frame[frame["split"] == "val"].copy()
    frame["path"] = [str((real / p).resolve()) for p in frame["path"]]
    frame["synthetic"] = 1
    out.mkdir(parents=True, exist_ok=True)
    frame.drop(columns=["split"]).to_csv(out / "manifest.csv", index=False)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "bench" / "out" / "pneumonia")
    parser.add_argument("--skip", default="")
    parser.add_argument("--tstr-seeds", default="0,1,2")
    parser.add_argument("--tstr-epochs", default="15")
    args = parser.parse_args()
    from synthmed.cli import main as synthmed

    real, synthetic = find_sets(args.run)
    out = args.run / "eval"
    summary = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "real": str(real),
        "synthetic": str(synthetic),
    }
    for name, synth, eval_dir in (
        ("generator", synthetic, out / "generator"),
        ("perfect_stand_in", stand_in(real, out / "stand_in_set"), out / "stand_in"),
    ):
        started = time.perf_counter()
        code = synthmed(
            [
                "evaluate",
                "--real",
                str(real),
                "--synthetic",
                str(synth),
                "--out",
                str(eval_dir),
                "--cache-dir",
                str(out / "cache"),
                "--skip",
                args.skip,
                "--tstr-seeds",
                args.tstr_seeds,
                "--tstr-epochs",
                args.tstr_epochs,
            ]
        )
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        fid = metrics["fidelity"].get("overall", {})
        summary[name] = {
            "exit_code": code,
            "wall_s": round(time.perf_counter() - started, 1),
            "counts": metrics["inputs"]["counts"],
            "fid": fid.get("synthetic", {}).get("fid"),
            "fid_at_floor_n": fid.get("synthetic", {}).get("fid_at_floor_n"),
            "fid_floor": fid.get("real_floor", {}).get("fid"),
            **{
                m: fid.get("synthetic", {}).get(m, {}).get("value")
                for m in ("precision", "recall", "density", "coverage")
            },
            "kid": fid.get("synthetic", {}).get("kid", {}).get("value"),
            "msssim": {k: v.get("mean") for k, v in metrics["diversity"].get("overall", {}).items()},
            "share_flagged": metrics["memorisation"].get("share_flagged"),
            "verdicts": {
                p: metrics[p].get("verdict")
                for p in ("fidelity", "diversity", "memorisation", "usefulness", "condition_fidelity", "explanations")
            },
            "tstr_over_trtr_balanced_accuracy": metrics["usefulness"].get("tstr_over_trtr_balanced_accuracy"),
            "timings_s": metrics["timings_s"],
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
