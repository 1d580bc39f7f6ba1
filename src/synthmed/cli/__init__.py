"""The `synthmed` command line: one subcommand module per pipeline stage, registered here.

Each module in this package exposes `register(subparsers)` that adds its subcommand(s) and sets
`func=run` on them. Modules import heavy libraries (torch, diffusers, ...) inside `run`, so
`synthmed --help` stays fast. Nothing imports this package.
"""

from __future__ import annotations

import argparse
import logging
import sys

from synthmed import __version__
from synthmed.cli import (
    demo, env, evaluate, finetune, latent, prepare, prompt, report, sample, study, train,
)

SUBCOMMAND_MODULES = (prepare, train, sample, evaluate, report, study, prompt, finetune, latent, demo, env)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="synthmed",
        description="Synthetic medical images with diffusion models, and the evidence of whether they are any good.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"synthmed {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.func(args)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        # Library errors say how to fix the problem; show them without a traceback.
        print(f"synthmed {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
