"""The one format every benchmark writes: bench/results/NAME.json, rendered into BENCHMARKS.md by bench/render.py."""

from __future__ import annotations

import json
import platform
import shlex
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
    cpu = platform.processor() or platform.system()
    return f"{platform.machine()} {cpu}, {cores} usable cores, Python {sys.version.split()[0]}"


EARLIER = "figures from an earlier run (not regenerated in this session)"
EARLIER_PREFIX = "figures from an earlier run"  # older files name the session in brackets
"""Heading of a section that carries figures measured before the current code (kept, labelled, not re-run)."""


def command_line() -> str:
    """The command that is running now, as a reader would type it (so the command printed matches the table)."""
    return f".venv/bin/python bench/{Path(sys.argv[0]).name} {shlex.join(sys.argv[1:])}".strip()


def earlier_sections(name: str, results_dir: Path | None = None) -> list[dict]:
    """The labelled earlier-run sections of bench/results/NAME.json, to carry over when a run cannot redo them."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    if not path.is_file():
        return []
    sections = json.loads(path.read_text()).get("sections", [])
    return [s for s in sections if s.get("heading", "").startswith(EARLIER_PREFIX)]


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
