"""The one format every benchmark writes: bench/results/NAME.json, rendered into BENCHMARKS.md by bench/render.py."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    try:
        import os

        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = None
    return f"{platform.machine()} {platform.processor() or platform.system()}, {cores} usable cores, Python {sys.version.split()[0]}"


def table(columns: list[str], rows: list[list]) -> dict:
    """A table block: column names and rows of plain values (numbers are rendered as given)."""
    return {"columns": list(columns), "rows": [list(r) for r in rows]}


def write_result(
    name: str, *, title: str, command: str, sections: list[dict], notes: str = "", results_dir: Path | None = None
) -> Path:
    """Write bench/results/NAME.json.

    sections: [{"heading": str, "text": markdown (optional), "table": table(...) (optional),
                "image": path relative to bench/results (optional)}]. `command` must reproduce every table.
    """
    out = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "title": title,
        "command": command,
        "notes": notes,
        "machine": machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "sections": sections,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    tmp.replace(out)
    return out
