"""Run `synthmed prepare` on every folder of ../shared/data and summarise each dataset card as Markdown.

Usage: .venv/bin/python bench/data_prepare_all.py [--out bench/out/data] [--size 64] [--only NAME ...]
Writes OUT/<name>/ (prepared datasets) and OUT/summary.md (the table quoted in bench/results/data.md).
Byte-identical duplicate groups found are compared with each folder's duplicates_md5.txt when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from result_file import command_line, write_result

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

RUNS = {  # name: (source, extra CLI arguments)
    "pneumoniamnist": ("medmnist/pneumoniamnist_28_trainsubset.npz", ["--size", "32"]),
    "kermany": ("cxr_kermany_224", ["--patient-id-regex", r"person(\d+)_"]),
    "kermany_all_ids": ("cxr_kermany_224", ["--patient-id-regex", r"(person\d+|NORMAL2-IM-\d+|IM-\d+)"]),
    "covid19_3class": ("cxr_covid19_3class", []),
    "lungct_covid": ("lungct_covid_ucsd", []),
    "brain_mri": ("brain_mri_4class", []),
    "blood_smear": ("all_blood_smear", []),
    "dicom": ("dicom", ["--window", "mediastinum"]),
    "nifti": ("nifti", ["--window", "mediastinum", "--slice-step", "2"]),
}


def expected_duplicates(folder: Path) -> list[frozenset[str]] | None:
    """Groups listed in duplicates_md5.txt (paths relative to the folder), or None when absent."""
    listing = folder / "duplicates_md5.txt"
    if not listing.is_file():
        return None
    lines = [line for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [frozenset(line.split("\t")) for line in lines]


def summarise(name: str, source: Path, out: Path, command: str, wall_s: float) -> dict:
    card = json.loads((out / "card.json").read_text())
    found = [frozenset(g["sources"]) for g in card["exact_duplicates"]["list"]]
    expected = expected_duplicates(source) if source.is_dir() else None
    return {
        "name": name,
        "command": command,
        "wall_s": round(wall_s, 1),
        "n_images": card["n_images"],
        "n_patients": card["n_patients"],
        "channels": card["channels"],
        "balance": card["balance"],
        "exact_groups": card["exact_duplicates"]["groups"],
        "exact_cross": card["exact_duplicates"]["crossing_splits"],
        "expected_groups": None if expected is None else len(expected),
        "expected_found": None if expected is None else sum(g in found for g in expected),
        "near_pairs": card["near_duplicates"]["pairs"],
        "near_cross": card["near_duplicates"]["crossing_splits"],
        "patient_leakage": card["patient_leakage"]["patients"],
        "warnings": card["warnings"],
        "errors": card["errors"]["list"],
        "notes": card["notes"],
    }


def to_markdown(rows: list[dict], size_px: int) -> str:
    lines = [
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.processor() or platform.machine()}, 2 workers), --size {size_px} unless stated.",
        "",
    ]
    lines += [
        "| dataset | images | patients | ch | split/class counts | identical groups (cross splits) | "
        "duplicates_md5.txt groups found | near-dup pairs (cross) | patients in 2 source splits | errors | time s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        balance = "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for s, c in r["balance"].items())
        expected = "-" if r["expected_groups"] is None else f"{r['expected_found']}/{r['expected_groups']}"
        lines.append(
            f"| {r['name']} | {r['n_images']} | {r['n_patients']} | {r['channels']} | {balance} | "
            f"{r['exact_groups']} ({r['exact_cross']}) | {expected} | {r['near_pairs']} ({r['near_cross']}) | "
            f"{r['patient_leakage']} | {len(r['errors'])} | {r['wall_s']} |"
        )
    lines.append("")
    for r in rows:
        lines += [f"### {r['name']}", "", f"`{r['command']}`", ""]
        lines += [f"- warning: {w}" for w in r["warnings"]] or ["- no warnings"]
        lines += [f"- error: `{e['source_path'].rsplit('/', 1)[-1]}`: {e['reason']}" for e in r["errors"][:5]]
        lines += [f"- note: {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "data")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} is absent; nothing to run.", file=sys.stderr)
        return 1
    rows = []
    for name, (relative, extra) in RUNS.items():
        if args.only and name not in args.only:
            continue
        source, out = SHARED / relative, args.out / name
        size = [] if "--size" in extra else ["--size", str(args.size)]
        argv = ["prepare", str(source), "--out", str(out), "--overwrite", *size, *extra]
        command = "synthmed " + " ".join(shlex.quote(a) for a in argv).replace(str(SHARED), "../shared/data").replace(
            str(args.out), "OUT"
        )
        started = time.perf_counter()
        subprocess.run([str(ROOT / ".venv" / "bin" / "synthmed"), *argv], check=True, stderr=subprocess.DEVNULL)
        rows.append(summarise(name, source, out, command, time.perf_counter() - started))
        print(f"{name}: {rows[-1]['n_images']} images in {rows[-1]['wall_s']} s", flush=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    summary = to_markdown(rows, args.size)
    (args.out / "summary.md").write_text(summary)
    print(args.out / "summary.md")
    write_result(
        "data_prepare_all",
        title="`synthmed prepare` on every folder of ../shared/data",
        command=command_line(),
        sections=[{"heading": "", "text": summary}],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
