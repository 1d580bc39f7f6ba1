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

    path = build_report(args.eval_dir, out_path=args.out, title=args.title)
    print(path)
    return 0
