"""`synthmed train`: train a class-conditional diffusion model on a prepared dataset."""

from __future__ import annotations

import argparse
import logging
from typing import get_args

from synthmed.models.config import DEFAULT_OBJECTIVE, PRESETS, Objective, objective_of, resolve_objective

# CLI flag -> TrainConfig field (flags left unset keep the stored config on --resume, else the defaults).
TRAIN_FLAGS = {
    "max_steps": int,
    "max_duration_min": float,
    "batch_size": int,
    "lr": float,
    "mixed_precision": str,
    "sample_every_steps": int,
    "checkpoint_every_steps": int,
    "seed": int,
    "snr_gamma": float,
    "class_balance_power": float,
    "log_with": str,
}


def add_tracker_flag(parser: argparse.ArgumentParser) -> None:
    """`--log-with`: also send training metrics to an accelerate tracker (stats.jsonl is always written)."""
    parser.add_argument(
        "--log-with",
        choices=["none", "tensorboard", "mlflow", "wandb"],
        default=None,
        help="also log metrics to this tracker (needs its package; files under RUN/); default none",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a class-conditional diffusion model (CFG, EMA, crash-safe checkpoints)",
        description="Train on a prepared dataset. Multi-GPU / multi-node: `accelerate launch -m synthmed.cli "
        "train ...` (batch size is per process). A run killed at any moment continues with --resume.",
    )
    parser.add_argument("dataset", help="prepared dataset folder (from `synthmed prepare`)")
    parser.add_argument("--out", required=True, help="run folder (config.json, stats.jsonl, checkpoints/, model/)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="UNet size preset (default: the one for the dataset's image size and the device: "
        "64-cpu / 128-cpu without a GPU)",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="step budget")
    parser.add_argument("--max-duration-min", type=float, default=None, help="wall-clock budget in minutes")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default 64)")
    parser.add_argument(
        "--lr", type=float, default=None, help="peak AdamW learning rate (default 1e-3; 1e-4 for presets 128 and 256)"
    )
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default=None,
        help="autocast precision (default auto: bf16 on GPUs and bf16-capable CPUs; fp16 needs a GPU)",
    )
    parser.add_argument("--resume", action="store_true", help="continue RUN from its newest complete checkpoint")
    parser.add_argument("--sample-every-steps", type=int, default=None, help="grid period (0 = at the end only)")
    parser.add_argument("--checkpoint-every-steps", type=int, default=None, help="checkpoint period (default 500)")
    parser.add_argument("--seed", type=int, default=None, help="seed of data order, noise and init (default 0)")
    parser.add_argument(
        "--prediction-type",
        choices=["epsilon", "v_prediction"],
        default=None,
        help="UNet target of --objective diffusion (default v_prediction; giving it without --objective means "
        "diffusion)",
    )
    parser.add_argument(
        "--objective",
        choices=get_args(Objective),
        default=None,
        help=f"flow_matching (rectified flow, logit-normal times; sampled with flow_euler) or diffusion "
        f"(--prediction-type, min-SNR). Default {DEFAULT_OBJECTIVE}, or diffusion when --prediction-type or "
        f"--snr-gamma is given; --resume keeps the run's own",
    )
    parser.add_argument(
        "--snr-gamma",
        type=float,
        default=None,
        help="min-SNR gamma of diffusion (default 5; 0 = off; a non-zero value without --objective means diffusion)",
    )
    parser.add_argument(
        "--class-balance-power",
        type=float,
        default=None,
        help="1 = every class equally often (default); 0 = draw images as the data is",
    )
    parser.add_argument(
        "--hflip",
        action="store_true",
        default=None,
        help="random horizontal flips (off by default: laterality matters in chest X-rays)",
    )
    add_tracker_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the TrainConfig (stored one on --resume) with the given flags applied, then train."""
    from pathlib import Path

    from synthmed.train.config import OBJECTIVE_SETTINGS, TrainConfig, default_preset, train_config_for_dataset
    from synthmed.train.loop import CONFIG_NAME, train

    overrides = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    stored = Path(args.out) / CONFIG_NAME
    resuming = args.resume and stored.is_file()
    # A resumed run keeps its stored objective unless one is asked for; a new run resolves the default.
    objective = None if resuming and not (args.objective or args.prediction_type) else _objective(args, overrides)
    if args.hflip:
        overrides["hflip"] = True
    if overrides.get("snr_gamma") == 0:
        overrides["snr_gamma"] = None
    if resuming:
        base = TrainConfig.load(stored).model_dump()
        trained = base["model"]["prediction_type"]
        trained_objective = objective_of(trained)
        if (objective and objective != trained_objective) or args.prediction_type not in (None, trained):
            wanted = args.prediction_type or OBJECTIVE_SETTINGS[objective or trained_objective]["prediction_type"]
            raise ValueError(
                f"{args.out} was trained with {trained} ({trained_objective}); it cannot resume "
                f"with prediction type {wanted} (--prediction-type / --objective): drop those flags."
            )
        _check_resume(args, base, overrides)
        logging.getLogger("synthmed.train").info("objective %s (%s): kept from the run", trained_objective, trained)
        config = TrainConfig.model_validate({**base, **overrides})
    else:
        model_overrides = {"prediction_type": args.prediction_type} if args.prediction_type else {}
        budget = {k: overrides.get(k) for k in ("max_steps", "max_duration_min")}
        if budget == {"max_steps": None, "max_duration_min": None}:
            raise ValueError("give a budget: --max-steps N and/or --max-duration-min M.")
        preset, why = (args.preset, "given with --preset") if args.preset else default_preset(args.dataset, **budget)
        logger = logging.getLogger("synthmed.train")
        logger.info("model preset %s: %s", preset, why)
        logger.info("objective %s: %s", objective, _objective_reason(args))
        config = train_config_for_dataset(
            args.dataset, preset=preset, objective=objective, model_overrides=model_overrides, **overrides
        )
    model_dir = train(config, run_dir=args.out, resume=args.resume)
    print(f"model:   {model_dir}")
    print(f"run:     {args.out} (stats.jsonl, log.txt, grids/, checkpoints/)")
    print(f"sample:  synthmed sample {args.out} --out {Path(args.out) / 'samples'} --n-per-class 16")
    return 0


def _objective_reason(args: argparse.Namespace) -> str:
    """Why the run trains with its objective, for the log."""
    if args.objective:
        return "given with --objective"
    if args.prediction_type or args.snr_gamma:
        flag = "--prediction-type" if args.prediction_type else "--snr-gamma"
        return f"{flag} is diffusion's setting (pass --objective to choose explicitly)"
    return f"the default ({DEFAULT_OBJECTIVE}; --objective diffusion for v-prediction + min-SNR)"


def _objective(args: argparse.Namespace, overrides: dict) -> Objective:
    """The objective asked for by --objective / --prediction-type / --snr-gamma (resolve_objective's rule).

    Flow matching has no min-SNR weighting: its snr_gamma is stored as None (an explicit --snr-gamma is refused).
    """
    objective = resolve_objective(args.objective, prediction_type=args.prediction_type, snr_gamma=args.snr_gamma)
    if objective != "flow_matching":
        return objective
    if args.prediction_type:
        raise ValueError(
            f"--objective flow_matching trains the flow velocity; drop --prediction-type {args.prediction_type} "
            f"(it is for --objective diffusion)."
        )
    if overrides.get("snr_gamma"):
        raise ValueError("--snr-gamma is min-SNR weighting of diffusion; drop it with --objective flow_matching.")
    overrides["snr_gamma"] = None
    return objective


# Settings that shape the training trajectory: a resumed run must keep them (budgets and cadences may change; the
# per-process batch_size may change with the process count: the loop checks the global batch).
TRAJECTORY_FIELDS = ("lr", "seed", "snr_gamma", "class_balance_power", "mixed_precision", "hflip")


def _check_resume(args: argparse.Namespace, base: dict, overrides: dict) -> None:
    """Refuse a --resume whose dataset or trajectory settings differ from the run's stored config."""
    from pathlib import Path

    problems = []
    if Path(args.dataset).resolve() != Path(base["dataset"]).resolve():
        problems.append(f"dataset {base['dataset']} (given {args.dataset})")
    problems += [
        f"{name} {base.get(name)} (given {value})"
        for name, value in overrides.items()
        if name in TRAJECTORY_FIELDS and base.get(name) != value
    ]
    if problems:
        raise ValueError(
            f"{args.out} was trained with {'; '.join(problems)}: a resumed run keeps the dataset and the settings "
            f"that shape training. Drop those flags (or pass the run's values), or train into a new --out folder."
        )
