"""`synthmed latent`: train an autoencoder, train a latent diffusion model on its latents, sample it."""

from __future__ import annotations

import argparse
import logging

from synthmed.cli.sample import add_common_flags, class_list
from synthmed.cli.train import add_tracker_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `latent train-autoencoder`, `latent train` and `latent sample`."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = subparsers.add_parser(
        "latent", help="latent diffusion for 256 px and larger (autoencoder + latent UNet)", formatter_class=fmt
    )
    commands = parser.add_subparsers(dest="latent_command", metavar="STEP", required=True)

    ae = commands.add_parser(
        "train-autoencoder", help="train an AutoencoderKL on a prepared dataset", formatter_class=fmt
    )
    ae.add_argument("dataset", help="prepared dataset folder")
    ae.add_argument("--out", required=True, help="autoencoder folder (config.json + model.safetensors)")
    ae.add_argument(
        "--preset",
        choices=["tiny", "f4", "f8"],
        default="f8",
        help="downsampling: f8 = 256 px -> 32x32 latents, f4 -> 64x64, tiny for tests",
    )
    ae.add_argument("--latent-channels", type=int, default=4)
    ae.add_argument("--size", type=int, default=None, help="image size in px (default: the dataset's)")
    ae.add_argument("--kl-weight", type=float, default=1e-6)
    _training_flags(ae, batch_size=8, max_steps=5000, checkpoint_every=500)
    ae.set_defaults(func=run_train_autoencoder)

    tr = commands.add_parser("train", help="train a class/metadata-conditioned latent UNet", formatter_class=fmt)
    tr.add_argument("dataset", help="prepared dataset folder")
    tr.add_argument(
        "--autoencoder", required=True, help="folder from `latent train-autoencoder`, or a diffusers VAE folder"
    )
    tr.add_argument("--out", required=True, help="run folder")
    tr.add_argument(
        "--preset",
        choices=["16-cpu", "32", "64", "tiny"],
        default="32",
        help="UNet size by latent side (16-cpu: CPU-sized)",
    )
    tr.add_argument(
        "--metadata",
        default="age_years,sex,view",
        help="comma-separated metadata to condition on where the manifest has it ('' for class only)",
    )
    tr.add_argument(
        "--text-encoder",
        default=None,
        help="add text conditioning: a local folder with text_encoder/ + tokenizer/ (e.g. an SD folder)",
    )
    tr.add_argument(
        "--caption-template",
        default="{modality}, {label}",
        help="captions where the manifest has no `caption` column (text conditioning only)",
    )
    tr.add_argument("--ema-decay", type=float, default=0.999)
    tr.add_argument("--snr-gamma", type=float, default=0.0, help="min-SNR-gamma loss weighting (0 = plain MSE)")
    tr.add_argument(
        "--objective",
        choices=["diffusion", "flow_matching"],
        default=None,
        help="diffusion (the latent default: v-prediction) or flow_matching; --resume keeps the run's own",
    )
    _training_flags(tr, batch_size=16, max_steps=20000, checkpoint_every=1000)
    tr.set_defaults(func=run_train)

    sa = commands.add_parser("sample", help="sample a latent run into a synthetic image set", formatter_class=fmt)
    add_common_flags(sa, run_help="run folder from `latent train`")
    sa.add_argument("--batch-size", type=int, default=16, help="images per denoising batch")
    sa.add_argument("--seed", type=int, default=None, help="deprecated alias of --seed-start")
    sa.add_argument("--age-years", type=float, default=None, help="fix the age; default drawn from training data")
    sa.add_argument("--sex", default=None, help="fix the sex value; default drawn from training data")
    sa.add_argument("--view", default=None, help="fix the view value; default drawn from training data")
    sa.add_argument(
        "--prompt",
        default=None,
        help="text-conditioned runs: caption for every image; default training captions of each class",
    )
    sa.set_defaults(func=run_sample)


def _training_flags(parser: argparse.ArgumentParser, *, batch_size: int, max_steps: int, checkpoint_every: int) -> None:
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak AdamW lr (warmup, cosine decay)")
    parser.add_argument("--max-steps", type=int, default=max_steps, help="step budget")
    parser.add_argument("--max-duration-min", type=float, default=None, help="wall-clock budget in minutes")
    parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every)
    parser.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--seed", type=int, default=0)
    add_tracker_flag(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


def _loop_settings(args: argparse.Namespace) -> dict:
    return {
        "batch_size": args.batch_size,
        "lr": args.learning_rate,
        "max_steps": args.max_steps,
        "max_duration_min": args.max_duration_min,
        "checkpoint_every_steps": args.checkpoint_every,
        "mixed_precision": args.mixed_precision,
        "seed": args.seed,
        "log_with": args.log_with or "none",
    }


def _resolved(path: str) -> str:
    """An absolute path (stored in the run config, so --resume from another folder compares equal)."""
    from pathlib import Path

    return str(Path(path).expanduser().resolve())


def run_train_autoencoder(args: argparse.Namespace) -> int:
    from synthmed.data.manifest import read_dataset_info
    from synthmed.latent.autoencoder import AE_PRESETS, AETrainConfig, AutoencoderConfig, train_autoencoder

    info = read_dataset_info(args.dataset)
    config = AutoencoderConfig(
        image_size_px=args.size or info.image_size_px,
        channels=info.channels,
        latent_channels=args.latent_channels,
        **AE_PRESETS[args.preset],
    )
    train = AETrainConfig(
        dataset=_resolved(args.dataset), autoencoder=config, kl_weight=args.kl_weight, **_loop_settings(args)
    )
    train_autoencoder(train, out=args.out, resume=args.resume)
    print(f"autoencoder in {args.out} ({config.latent_channels}x{config.latent_size}x{config.latent_size} latents)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthmed.files import read_json
    from synthmed.latent.train import LatentTrainConfig, train_latent
    from synthmed.models.config import LATENT_DEFAULT_OBJECTIVE
    from synthmed.train.run_files import CONFIG_NAME

    fields = [f.strip() for f in args.metadata.split(",") if f.strip()]
    stored = Path(args.out) / CONFIG_NAME
    objective = args.objective or LATENT_DEFAULT_OBJECTIVE
    if args.objective is None and args.resume and stored.is_file():
        objective = read_json(stored).get("objective", objective)  # keep the run's own
    if objective == "flow_matching" and args.snr_gamma:
        raise ValueError("--snr-gamma is min-SNR weighting of diffusion; drop it with --objective flow_matching.")
    config = LatentTrainConfig(
        dataset=_resolved(args.dataset),
        autoencoder=_resolved(args.autoencoder),
        preset=args.preset,
        metadata_fields=fields,
        ema_max_decay=args.ema_decay,
        snr_gamma=args.snr_gamma or None,
        objective=objective,
        text_encoder=args.text_encoder and _resolved(args.text_encoder),
        caption_template=args.caption_template,
        **_loop_settings(args),
    )
    train_latent(config, out=args.out, resume=args.resume)
    print(
        f"latent diffusion run in {args.out}; sample it with: synthmed latent sample {args.out} --out DIR "
        f"--n-per-class N"
    )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    """`latent sample`: --seed is the deprecated spelling of --seed-start."""
    if args.seed is not None:
        if args.seed_start not in (0, args.seed):
            raise ValueError(f"--seed {args.seed} and --seed-start {args.seed_start} disagree; give --seed-start only.")
        logging.getLogger("synthmed.cli").warning("--seed is deprecated: use --seed-start (the same in every family).")
        args.seed_start = args.seed
    return sample_latent_run(args)


def sample_latent_run(args: argparse.Namespace) -> int:
    """Sample the latent run `args.model` with the flags `synthmed sample` and `latent sample` share."""
    from synthmed.latent.sample import sample_latent
    from synthmed.sample.writer import FORMAT_CHOICES

    sample_latent(
        args.model,
        out=args.out,
        n_per_class=args.n_per_class,
        sampler=args.sampler,
        steps=args.steps,
        guidance_scale=2.0 if args.guidance_scale is None else args.guidance_scale,
        seed_start=args.seed_start,
        batch_size=args.batch_size,
        classes=class_list(args.classes),
        age_years=getattr(args, "age_years", None),
        sex=getattr(args, "sex", None),
        view=getattr(args, "view", None),
        prompt=getattr(args, "prompt", None),
        formats=FORMAT_CHOICES[args.format],
        bit_depth=16 if args.format == "png16" else 8,
        modality=args.modality,
        mixed_precision=args.mixed_precision,
        device=args.device,
    )
    print(f"wrote {args.n_per_class} images per class to {args.out} (latent run {args.model})")
    return 0
