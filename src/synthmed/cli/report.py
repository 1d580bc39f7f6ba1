"""`synthmed report EVAL_DIR`: write the self-contained HTML report of an evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report from an evaluation folder",
        description="Write one self-contained HTML report (images embedded, no network requests) from "
        "EVAL_DIR/metrics.json and its figures, and copy metrics.json beside it. EVAL_DIR may also "
        "be a run folder: its eval/ subfolder is used. EVAL_DIR/study.json (from `synthmed study "
        "analyze --json`) adds the reader-study section.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "eval_dir",
        metavar="EVAL_DIR",
        type=Path,
        help="folder written by `synthmed evaluate` (or a run folder holding eval/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="where to write the report (default: EVAL_DIR/report.html)",
    )
    parser.add_argument("--title", default=None, help="report title (default: 'Synthetic image evaluation')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the report and print its path."""
    from synthmed.report import build_report

    if args.out is not None:
        check_out(args.eval_dir, args.out)
    path = build_report(args.eval_dir, out_path=args.out, title=args.title)
    print(path)
    return 0


def check_out(eval_dir: Path, out: Path) -> None:
    """Refuse an --out that would overwrite an input of the report or any file that is not an HTML page."""
    from synthmed.report.build import METRICS_NAME, resolve_eval_dir

    target = out.expanduser().resolve()
    if target.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the report's file, e.g. {out / 'report.html'}.")
    if target.suffix.lower() not in (".html", ".htm") or target.name == METRICS_NAME:
        raise ValueError(f"--out {out}: the report is an HTML page; give a FILE.html (an existing one is replaced).")
    folder = resolve_eval_dir(eval_dir).resolve()
    if target.is_file() and target.is_relative_to(folder) and target.name != "report.html":
        raise FileExistsError(
            f"--out {out} is a file of the evaluation the report reads; give another path (default "
            f"{folder / 'report.html'})."
        )
