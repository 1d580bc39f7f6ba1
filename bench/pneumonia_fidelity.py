"""The pneumonia quality benchmark restated under the fidelity panels: `synthmed evaluate` on the model's samples.

    .venv/bin/python bench/pneumonia_train.py --max-steps 1786 --n-per-class 600     # the session-2 recipe
    .venv/bin/python bench/pneumonia_fidelity.py bench/out/pneumonia/samples_dpmpp20_g1

Runs `synthmed evaluate` (fidelity, diversity, memorisation; usefulness and explanations skipped) on each
sample folder against the prepared PneumoniaMNIST data, and tabulates per panel and class the distance to
the real training images as a multiple of the real-vs-real floor, the permutation p-value and the status,
beside the previous instrument's figure (FID of the domain encoder's features over its floor).
Writes bench/results/pneumonia_fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import table, write_result  # noqa: E402

from synthmed.evaluate.panel_distance import panel_status  # noqa: E402
from synthmed.evaluate.run import EvalConfig, evaluate  # noqa: E402


def _fmt(value, digits=2):
    return None if value is None else round(float(value), digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path("bench/out/pneumonia/data"))
    parser.add_argument("--cache", type=Path, default=Path("bench/out/cache"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows, verdicts = [], []
    for folder in args.samples:
        out = folder.parent / f"eval_{folder.name}"
        metrics = json.loads(
            evaluate(
                EvalConfig(
                    real_dir=args.data,
                    synthetic_dir=folder,
                    out_dir=out,
                    cache_dir=args.cache,
                    seed=args.seed,
                    skip=("usefulness", "condition_fidelity", "explanations"),
                )
            ).read_text()
        )
        fidelity = metrics["fidelity"]
        semantic = fidelity["semantic_fid_kid_prdc"]
        for scope in ["overall", *fidelity["panels"]["texture"]["per_class"]]:
            cells = []
            for panel in ("intensity", "texture", "semantic"):
                block = fidelity["panels"][panel]
                block = block["overall"] if scope == "overall" else block["per_class"][scope]
                ratio = (block.get("ratio_to_floor") or {}).get("value")
                cells += [_fmt(ratio), _fmt(block.get("permutation_p"), 3), panel_status(block)]
            old = semantic["overall"] if scope == "overall" else semantic["per_class"][scope]
            rows.append([folder.name, scope, *cells, _fmt(old.get("fid_ratio_to_floor"))])
        prdc = fidelity["precision_recall_all_panels"]
        verdicts.append(
            f"- `{folder.name}`: fidelity **{fidelity['status']}**, diversity "
            f"**{metrics['diversity']['status']}**, memorisation **{metrics['memorisation']['status']}** "
            f"({metrics['memorisation']['n_flagged']} of {metrics['memorisation']['n_synthetic']} "
            f"flagged); precision on all panels {prdc['synthetic'].get('precision', float('nan')):.2f} "
            f"(held-out real {prdc['real_floor'].get('precision', float('nan')):.2f}). "
            f"Verdict: {fidelity['verdict']}"
        )
    columns = [
        "samples",
        "class",
        "intensity x floor",
        "p",
        "status",
        "texture x floor",
        "p",
        "status",
        "semantic x floor",
        "p",
        "status",
        "old: semantic FID x floor",
    ]
    command = ".venv/bin/python bench/pneumonia_fidelity.py " + " ".join(map(str, args.samples))
    path = write_result(
        "pneumonia_fidelity",
        title="Evaluate: the pneumonia quality benchmark under the new metric",
        command=command,
        sections=[
            {
                "heading": "Distance to real training images per panel",
                "text": "\n".join(verdicts),
                "table": table(columns, rows),
            }
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
