"""GPU figures at 256 px: the CXR experiment's GPU profile, training and sampling throughput in bf16.

    python bench/gpu_256.py --data-root DATA --train-min 2.0 --deadline-s 420 [--copy-to DIR]

Run on a CUDA machine (issue 12 item 9, issue 10 item 5). DATA holds `cxr_kermany_224/{train,test}/
{NORMAL,PNEUMONIA}` (a subset is enough: throughput does not depend on the number of images).
Three parts, each in its own process and under the one deadline, so a failure in one keeps the others:

1. `synthmed run experiments/cxr256_pixel.toml --profile gpu` with a wall-clock cap on training and a
   smaller sample / evaluation: the real pipeline end to end at 256 px; training images/s from its
   stats.jsonl (EMA, logging and checkpoint checks included).
2. `synthmed sample` from that model: images/s written to disk (DPM-Solver++ 20 steps, bf16).
3. `bench/latent_throughput.py --device cuda --bf16`: the pixel and the latent model's raw step rates.

Baseline: the reference model (Ali et al. 2022) trained at 37 images/s on a Quadro RTX 8000
(700k steps of batch 32 in about 7 GPU-days). Ratios are ours / 37.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from result_file import RESULTS_DIR, table, write_result

REFERENCE_IMG_PER_S = 37.0
REFERENCE_STEPS, REFERENCE_BATCH = 700_000, 32
ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], *, log: Path, timeout_s: float, env: dict) -> tuple[int, float]:
    """Run `cmd` with output to `log`; (return code or -9 on timeout, seconds)."""
    start = time.perf_counter()
    with log.open("w") as handle:
        try:
            done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, timeout=max(timeout_s, 1), env=env)
            rc = done.returncode
        except subprocess.TimeoutExpired:
            rc = -9
    print(f"{' '.join(cmd[:4])} ... rc={rc} in {time.perf_counter() - start:.0f} s", flush=True)
    return rc, time.perf_counter() - start


def _train_rate(run: Path) -> dict:
    stats = run / "train" / "stats.jsonl"
    if not stats.is_file():
        return {}
    rows = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "images_per_s" in r]
    if not rows:
        return {}
    later = rows[1:] or rows  # the first window holds CUDA start-up and cuDNN autotuning
    saved = run / "train" / "config.json"
    config = json.loads(saved.read_text()) if saved.is_file() else {}
    losses = [r["loss"] for r in rows]
    return {
        "steps": rows[-1].get("step"),
        "lr": config.get("lr"),
        "loss_min": min(losses),
        "loss_steps_100_200": [r["loss"] for r in rows if 100 <= r.get("step", 0) <= 200],
        "img_per_s": sum(r["images_per_s"] for r in later) / len(later),
        "windows": len(later),
        "last_loss": rows[-1].get("loss"),
    }


def _earlier_runs() -> list[dict]:
    """Sections of earlier GPU runs kept in bench/results/gpu_256.json (a GPU is lent only to some sessions)."""
    path = RESULTS_DIR / "gpu_256.json"
    sections = json.loads(path.read_text())["sections"] if path.is_file() else []
    return [s for s in sections if s.get("heading", "").startswith("an earlier GPU run")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding cxr_kermany_224/")
    parser.add_argument("--train-min", type=float, default=2.0, help="training wall-clock cap (minutes)")
    parser.add_argument("--deadline-s", type=float, default=420.0, help="stop starting new parts after this")
    parser.add_argument("--work", default="bench/out/gpu256", help="scratch folder")
    parser.add_argument("--run-set", action="append", default=[], help="extra `synthmed run --set` (repeatable)")
    parser.add_argument("--skip-raw", action="store_true", help="skip part 3 (bench/latent_throughput.py)")
    parser.add_argument("--copy-to", default=None, help="also copy results and logs here (e.g. $OUT)")
    args = parser.parse_args()
    start = time.perf_counter()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SYNTHMED_DATA_ROOT": str(Path(args.data_root).resolve())}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    left = lambda: args.deadline_s - (time.perf_counter() - start)  # noqa: E731

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"device: {gpu}, torch {torch.__version__}", flush=True)
    raw_rc = -1
    if not args.skip_raw:
        cmd = [sys.executable, "bench/latent_throughput.py", "--size-px", "256", "--batch-size", "32"]
        cmd += ["--train-steps", "20", "--sample-steps", "20", "--device", "cuda", "--bf16"]
        raw_rc, _ = _run(cmd, log=work / "latent_throughput.log", timeout_s=min(left(), 100), env=env)

    run = work / "run"
    overrides = [
        f"train.max_duration_min={args.train_min}",
        "train.checkpoint_every_min=60.0",
        "sample.n_per_class=64",
        "evaluate.tstr_seeds=[0]",
        "evaluate.tstr_epochs=3",
        "evaluate.max_real=400",
        "evaluate.explain_images=4",
        *args.run_set,
    ]
    cmd = [sys.executable, "-m", "synthmed.cli", "run", "experiments/cxr256_pixel.toml", "--profile", "gpu"]
    cmd += ["--out", str(run)] + [x for o in overrides for x in ("--set", o)]
    run_rc, run_s = _run(cmd, log=work / "run.log", timeout_s=left() - 60, env=env)
    rate = _train_rate(run)

    sample_rc, sample_s, n_sample = -1, 0.0, 256
    if (run / "train").is_dir() and left() > 20:
        cmd = [sys.executable, "-m", "synthmed.cli", "sample", str(run / "train"), "--out", str(work / "samples")]
        cmd += ["--n-per-class", str(n_sample // 2), "--sampler", "dpmpp", "--mixed-precision", "bf16"]
        cmd += ["--batch-size", "256", "--device", "cuda"]
        sample_rc, sample_s = _run(cmd, log=work / "sample.log", timeout_s=min(left(), 120), env=env)

    images = REFERENCE_STEPS * REFERENCE_BATCH
    rows = []
    if rate:
        ours = rate["img_per_s"]
        rows.append(
            [
                "pixel preset 256, `synthmed run` training (stats.jsonl)",
                round(ours, 1),
                f"{ours / REFERENCE_IMG_PER_S:.1f}x",
                f"{images / ours / 3600:.1f} h",
            ]
        )
    if sample_rc == 0:
        rows.append(
            [
                f"`synthmed sample` DPM-Solver++ 20 steps, {n_sample} PNGs written",
                round(n_sample / sample_s, 1),
                "",
                "",
            ]
        )
    text = (
        f"{gpu}, torch {torch.__version__}, bf16 autocast. `synthmed run` exit {run_rc} after {run_s:.0f} s "
        f"(training capped at {args.train_min} min: {rate.get('steps', '?')} steps of batch 32 at peak lr "
        f"{rate.get('lr', '?')}; loss: lowest {rate.get('loss_min', float('nan')):.4f}, steps 100-200 "
        f"{[round(v, 4) for v in rate.get('loss_steps_100_200', [])]}, last {rate.get('last_loss', '?')}). "
        f"The reference trained at {REFERENCE_IMG_PER_S:.0f} images/s on a "
        f"Quadro RTX 8000: {REFERENCE_STEPS:,} steps of batch {REFERENCE_BATCH} took about 7 GPU-days. The "
        "hours column is the time the same number of training images takes at our rate. Sampling time "
        "includes loading the model and writing PNGs and manifest."
    )
    columns = ["what", "images/s", "vs reference 37 img/s", "time for 700k x 32 images"]
    path = write_result(
        "gpu_256",
        title="GPU at 256 px (H200): the CXR experiment's GPU profile",
        command=f"python bench/gpu_256.py --data-root DATA --train-min {args.train_min} "
        + f"--deadline-s {args.deadline_s:g}"
        + "".join(f" --run-set {o}" for o in args.run_set)
        + (" --skip-raw" if args.skip_raw else ""),
        sections=[{"heading": "", "text": text, "table": table(columns, rows)}] + _earlier_runs(),
    )
    print(f"wrote {path}; raw throughput rc={raw_rc}", flush=True)
    if args.copy_to:
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        for src in [
            path,
            ROOT / "bench/results/latent_throughput.json",
            work / "run.log",
            work / "sample.log",
            work / "latent_throughput.log",
            run / "train" / "stats.jsonl",
            run / "report.html",
        ]:
            if Path(src).is_file() and Path(src).stat().st_size < 15 * 2**20:
                shutil.copy(src, dest / Path(src).name)
        grids = sorted((work / "samples" / "grids").glob("*.png"))
        if grids:
            shutil.copy(grids[0], dest / "sample_grid.png")


if __name__ == "__main__":
    main()
