"""`synthmed run EXPERIMENT.toml`: every stage of one experiment, in order, into one run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run an experiment file: prepare -> train -> sample -> evaluate -> report [-> study setup]",
        description="Run the stages an experiment file (TOML, or YAML with the same tables) names (examples in "
        "experiments/, reference in docs/experiments.md) into one run folder. Finished stages are skipped, "
        "an interrupted training run resumes, an interrupted sampling / evaluation / study setup runs again. "
        "The resolved settings and software versions are written to RUN/experiment.json and RUN/versions.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("experiment", type=Path, metavar="EXPERIMENT.toml|.yaml")
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder; default runs/NAME, or runs/NAME-PROFILE with --profile"
    )
    parser.add_argument(
        "--profile", default=None, help="apply the file's [profile.NAME] table over the base, e.g. cpu or gpu"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (TOML value), e.g. --set data_root=/data --set train.max_steps=100; "
        "$SYNTHMED_DATA_ROOT also overrides data_root",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the settings, the data folder and the sampler, then print the resolved settings and the stage "
        "plan; runs nothing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from synthmed.experiment.runner import check_inputs, describe, run_experiment
    from synthmed.experiment.schema import read_experiment

    config, data_root = read_experiment(args.experiment, profile=args.profile, overrides=args.overrides)
    run_dir = args.out or Path("runs") / (config.name + (f"-{args.profile}" if args.profile else ""))
    if args.dry_run:
        check_inputs(config, data_root=data_root, run_dir=run_dir)
        print(json.dumps(describe(config, data_root=data_root, run_dir=run_dir, profile=args.profile), indent=2))
        return 0
    result = run_experiment(config, data_root=data_root, run_dir=run_dir, profile=args.profile)
    print(f"\nsynthmed run finished: {result.run_dir}")
    for stage, action in result.actions.items():
        print(f"  {stage:<20} {action}")
    return 0
