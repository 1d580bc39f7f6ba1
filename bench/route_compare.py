"""Pixel vs latent route on one dataset: two `synthmed run` folders scored by the evaluation each run wrote.

    .venv/bin/python bench/route_compare.py bench/out/runs/cxr256_pixel-cpu bench/out/runs/cxr256_latent-cpu

Reads what the runs themselves wrote (no figure is retyped): stages.json (minutes per stage), train/stats.jsonl
(steps), the model files (parameters), samples/manifest.csv (images) and eval/metrics.json (fidelity panels as a
multiple of the real held-out floor, condition fidelity, diversity, memorisation, usefulness). The first run is
the baseline: each figure of the second is also given as its ratio to the first's. Writes
bench/results/route_compare.json (rendered into BENCHMARKS.md by bench/render.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import command_line, table, write_result  # noqa: E402

PANELS = ("intensity", "texture", "semantic")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _last_step(stats: Path) -> int:
    steps = [json.loads(line).get("step", 0) for line in stats.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


def _parameters(folder: Path) -> int:
    """Parameters of the run's final model (every safetensors file under train/model, or the latent train/ root)."""
    from safetensors import safe_open

    files = sorted((folder / "train" / "model").rglob("*.safetensors")) or sorted(
        p for p in (folder / "train").glob("*.safetensors")
    )
    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                count = 1
                for side in shape:
                    count *= side
                total += count
    return total


def scorecard(run: Path) -> dict[str, Any]:
    """What one run spent and how its evaluation scored it."""
    described, stages, metrics = (
        _json(run / "experiment.json"),
        _json(run / "stages.json"),
        _json(run / "eval" / "metrics.json"),
    )
    train = described["experiment"]["train"]
    minutes = {name: round(stage["seconds"] / 60, 1) for name, stage in stages.items()}
    with (run / "samples" / "manifest.csv").open() as f:
        n_images = sum(1 for _ in csv.DictReader(f))
    fidelity = metrics["fidelity"]["panels"]
    useful = metrics["usefulness"]["results"]
    arch = sorted(useful)[0]
    tstr, trtr = useful[arch]["synthetic"]["balanced_accuracy"], useful[arch]["real"]["balanced_accuracy"]
    condition = metrics["condition_fidelity"]
    diversity = metrics["diversity"]["overall"]
    return {
        "run": str(run),
        "family": train.get("family", "pixel"),
        "preset": train.get("preset"),
        "autoencoder": train.get("autoencoder", {}).get("preset"),
        "objective": train.get("objective"),
        "parameters_m": _parameters(run) / 1e6,
        "train_steps": _last_step(run / "train" / "stats.jsonl"),
        "minutes": minutes,
        "sample_s_per_image": stages["sample"]["seconds"] / max(n_images, 1),
        "n_synthetic": n_images,
        "fidelity_ratio": {p: fidelity[p]["overall"]["ratio_to_floor"]["value"] for p in PANELS if p in fidelity},
        "fidelity_status": metrics["fidelity"].get("panel_status", {}),
        "recognised": condition["synthetic"]["accuracy"],
        "recognised_real": condition["real_reference"]["accuracy"],
        "msssim": (diversity["synthetic"]["mean"], diversity["real"]["mean"]),
        "memorisation": metrics["memorisation"]["status"],
        "n_flagged": metrics["memorisation"].get("n_flagged"),
        "arch": arch,
        "tstr": (tstr["mean"], tstr["ci_low"], tstr["ci_high"]),
        "trtr": (trtr["mean"], trtr["ci_low"], trtr["ci_high"]),
    }


def _pct(value: tuple[float, float, float]) -> str:
    return f"{100 * value[0]:.1f}% [{100 * value[1]:.1f}, {100 * value[2]:.1f}]"


def rows(cards: list[dict[str, Any]]) -> list[list[str]]:
    base = cards[0]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "—"

    out = []
    measures = [
        (
            "model",
            lambda c: (
                f"{c['family']} {c['preset']}" + (f" + autoencoder {c['autoencoder']}" if c["autoencoder"] else "")
            ),
            None,
        ),
        ("objective", lambda c: c["objective"], None),
        ("parameters (M)", lambda c: f"{c['parameters_m']:.2f}", lambda c: c["parameters_m"]),
        ("training steps (batch 32)", lambda c: str(c["train_steps"]), lambda c: c["train_steps"]),
        (
            "training minutes (autoencoder + UNet)",
            lambda c: f"{c['minutes'].get('autoencoder', 0) + c['minutes']['train']:.1f}",
            lambda c: c["minutes"].get("autoencoder", 0) + c["minutes"]["train"],
        ),
        ("sampling s / image", lambda c: f"{c['sample_s_per_image']:.2f}", lambda c: c["sample_s_per_image"]),
    ]
    measures += [
        (
            f"fidelity {p} (x real floor; lower is better)",
            lambda c, p=p: f"{c['fidelity_ratio'][p]:.1f} ({c['fidelity_status'].get(p, '?')})",
            lambda c, p=p: c["fidelity_ratio"][p],
        )
        for p in PANELS
        if p in base["fidelity_ratio"]
    ]
    measures += [
        (
            "recognised as their class (real test: ...)",
            lambda c: f"{100 * c['recognised']:.0f}% ({100 * c['recognised_real']:.0f}%)",
            lambda c: c["recognised"],
        ),
        ("within-class MS-SSIM synthetic (real)", lambda c: f"{c['msssim'][0]:.3f} ({c['msssim'][1]:.3f})", None),
        ("memorisation", lambda c: f"{c['memorisation']} ({c['n_flagged']} flagged)", None),
        ("TSTR balanced accuracy [95% CI]", lambda c: f"{c['arch']}: {_pct(c['tstr'])}", lambda c: c["tstr"][0]),
        ("TRTR balanced accuracy (same classifier)", lambda c: _pct(c["trtr"]), None),
    ]
    for label, cell, number in measures:
        row = [label, *(cell(c) for c in cards)]
        row.append(ratio(number(cards[1]), number(base)) if number else "")
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="run folder of the baseline route (pixel)")
    parser.add_argument("other", type=Path, help="run folder of the route compared with it (latent)")
    parser.add_argument("--summary", default="", help="one paragraph written above the table")
    args = parser.parse_args()
    cards = [scorecard(args.baseline), scorecard(args.other)]
    columns = ["", f"{cards[0]['family']} ({args.baseline.name})", f"{cards[1]['family']} ({args.other.name})", "ratio"]
    write_result(
        "route_compare",
        title="Pixel vs latent route (CXR, CPU profiles)",
        command=command_line(),
        sections=[
            {"heading": "Scorecard", "text": args.summary, "table": table(columns, rows(cards))},
        ],
    )


if __name__ == "__main__":
    main()
