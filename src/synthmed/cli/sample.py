"""`synthmed sample`: N seeded images per class from a trained model into PNG/DICOM + manifest.csv."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthmed.sample.batch_sizes import DEVICE_BATCH_SIZES

# synthmed.models.sampling.SAMPLERS + the dpm++ alias (kept literal: parsing the CLI must not import torch)
SAMPLER_CHOICES = ["ddpm", "ddim", "dpmpp", "unipc", "flow_euler", "flow_heun", "dpm++"]
FORMAT_CHOICES = ["png", "png16", "dicom", "png+dicom"]  # = synthmed.sample.writer.FORMAT_CHOICES' keys


def class_list(values: list[str] | None) -> list[str] | None:
    """`--classes` as given: space-separated (`a b`), comma-separated (`a,b`) or both; None (no flag) = all classes."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--classes {' '.join(values)!r} names no class; name at least one, or leave --classes out.")
    return names


def add_common_flags(parser: argparse.ArgumentParser, *, run_help: str) -> None:
    """The flags `synthmed sample` and `synthmed latent sample` share (same names, same meaning)."""
    parser.add_argument("model", metavar="RUN", help=run_help)
    parser.add_argument("--out", required=True, help="output folder (images/<class>/, manifest.csv)")
    parser.add_argument("--n-per-class", type=int, required=True, help="images per class")
    parser.add_argument(
        "--classes", nargs="+", default=None, help="class names (or indices), space- or comma-separated; default all"
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLER_CHOICES,
        default=None,
        help="diffusers scheduler; default dpmpp for pixel models, ddim for latent runs, flow_euler for "
        "flow-matching models (flow_euler / flow_heun fit those only); dpm++ is an alias of dpmpp",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps; default the sampler's: ddpm 1000, ddim 50, dpmpp 20, unipc 20, flow_euler 20, "
        "flow_heun 10",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance w: uncond + w (cond - uncond); default 1 (none) for pixel models, 2 for "
        "latent runs",
    )
    parser.add_argument("--seed-start", type=int, default=0, help="image k of each class uses seed seed-start + k")
    parser.add_argument(
        "--format",
        choices=FORMAT_CHOICES,
        default="png",
        help="8-bit PNG, 16-bit PNG (grey), DICOM (SyntheticData=YES), or PNG + DICOM",
    )
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="UNet autocast")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    parser.add_argument("--modality", default="OT", help="DICOM Modality tag, e.g. CR, DX, CT, MR")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sample` subcommand."""
    parser = subparsers.add_parser(
        "sample",
        help="sample images per class from a trained model (one seed per image)",
        description="Image k of each class uses seed seed_start + k and is identical whatever --batch-size. "
        "A latent run folder (from `synthmed latent train`) is sampled as `synthmed latent sample` would.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_flags(
        parser,
        run_help="run folder (RUN, pixel or latent), model folder (RUN/model) or checkpoint folder",
    )
    defaults = DEVICE_BATCH_SIZES.items()
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per denoising batch (image k is the same whatever it is); default per device: "
        + ", ".join(f"{name} {batch}" for name, (batch, _) in defaults)
        + " (times the number of processes under accelerate launch)",
    )
    parser.add_argument(
        "--model-batch-size",
        type=int,
        default=None,
        help="rows per UNet call: the images may differ in their low bits with it (the manifest records it; give "
        "the same value to make the same set again; lower it on a GPU out of memory); default per device: "
        + ", ".join(f"{name} {rows}" for name, (_, rows) in defaults)
        + "; latent runs use 16",
    )
    parser.set_defaults(func=run)


def latent_run_folder(path: str | Path) -> Path | None:
    """The run folder when `path` is a latent run (or its model/ folder), else None."""
    from synthmed.latent.model import CONFIG_NAME, FORMAT

    path = Path(path).expanduser()
    for run, config in ((path, path / "model" / CONFIG_NAME), (path.parent, path / CONFIG_NAME)):
        try:
            if json.loads(config.read_text()).get("format") == FORMAT:
                return run
        except (OSError, ValueError, AttributeError):
            continue
    return None


def experiment_model_folder(path: str | Path) -> Path | None:
    """RUN/train when `path` is a `synthmed run` experiment folder (its models are trained there), else None."""
    from synthmed.experiment.folder import is_run_folder

    path = Path(path).expanduser()
    return path / "train" if path.is_dir() and is_run_folder(path) else None


def run(args: argparse.Namespace) -> int:
    """Validate the flags into a SampleConfig and sample (a latent run goes to `latent sample`; an experiment
    run folder is sampled from its train/ folder)."""
    trained = experiment_model_folder(args.model)
    if trained is not None:
        if not trained.is_dir():
            raise FileNotFoundError(
                f"{args.model} is a `synthmed run` folder whose train stage has not run yet (no {trained}); "
                f"finish the run (`synthmed run EXPERIMENT.toml --out {args.model}`) first."
            )
        args.model = str(trained)
    latent_run = latent_run_folder(args.model)
    if latent_run is not None:
        from synthmed.cli.latent import sample_latent_run

        if args.model_batch_size is not None:
            raise ValueError(
                f"--model-batch-size is for pixel models; {latent_run} is a latent run, sampled in 16-row UNet "
                f"calls: leave --model-batch-size out."
            )
        args.model = str(latent_run)
        if args.batch_size is None:  # latent sampling keeps CPU-sized 16-row calls on every device
            args.batch_size = DEVICE_BATCH_SIZES["cpu"][0]
        return sample_latent_run(args)

    from synthmed.models.sampling import sampler_name
    from synthmed.sample.generate import SampleConfig, sample_images

    config = SampleConfig(
        model_dir=args.model,
        out_dir=args.out,
        n_per_class=args.n_per_class,
        classes=class_list(args.classes),
        sampler=args.sampler and sampler_name(args.sampler),
        steps=args.steps,
        guidance_scale=1.0 if args.guidance_scale is None else args.guidance_scale,
        seed_start=args.seed_start,
        batch_size=args.batch_size,
        model_batch_size=args.model_batch_size,
        format=args.format,
        mixed_precision=args.mixed_precision,
        device=args.device,
        modality=args.modality,
    )
    out = sample_images(config)
    print(f"samples:  {out} ({out / 'manifest.csv'})")
    print(f"grids:    {out / 'grids'}")
    return 0
