"""`synthmed finetune`: adapt a local Stable Diffusion checkpoint to a prepared dataset (LoRA or full UNet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthmed.cli.train import add_tracker_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `finetune` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a local Stable Diffusion folder on a prepared dataset (LoRA by default)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataset", help="prepared dataset folder (from `synthmed prepare`)")
    parser.add_argument("--checkpoint", required=True, help="local diffusers Stable Diffusion folder")
    parser.add_argument("--out", required=True, help="run folder (LoRA weights, config, checkpoints, stats.jsonl)")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--full-unet", action="store_true", help="train every UNet weight instead of LoRA layers")
    parser.add_argument(
        "--caption-template",
        default="{modality}, {label}",
        help="used where the manifest has no `caption`; fields: any manifest column + modality, "
        "e.g. 'chest x-ray, {label}, {view}, {sex}, age {age_years}'",
    )
    parser.add_argument("--resolution", type=int, default=None, help="training size in px (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=None, help="default 1e-4 (LoRA) or 1e-5 (full UNet)")
    parser.add_argument("--max-steps", type=int, default=1000, help="step budget")
    parser.add_argument("--max-duration-min", type=float, default=None, help="wall-clock budget in minutes")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="0 disables EMA")
    parser.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--seed", type=int, default=0)
    add_tracker_flag(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synthmed.textgen.finetune import finetune
    from synthmed.textgen.finetune_run import FinetuneConfig

    full = args.full_unet
    config = FinetuneConfig(
        dataset=str(Path(args.dataset).resolve()),
        checkpoint=str(Path(args.checkpoint).resolve()),
        mode="full" if full else "lora",
        lora_rank=args.lora_rank,
        caption_template=args.caption_template,
        resolution_px=args.resolution,
        batch_size=args.batch_size,
        lr=args.learning_rate or (1e-5 if full else 1e-4),
        max_steps=args.max_steps,
        max_duration_min=args.max_duration_min,
        checkpoint_every_steps=args.checkpoint_every,
        ema_max_decay=args.ema_decay,
        log_with=args.log_with or "none",
        mixed_precision=args.mixed_precision,
        seed=args.seed,
    )
    out = finetune(config, out=args.out, resume=args.resume)
    print(
        f"fine-tuned weights in {out}; use them with: synthmed prompt PROMPT --provider local-sd "
        f"--checkpoint {args.checkpoint} --lora {out}"
    )
    return 0
