"""`synthmed sample`: N seeded images per class from a trained model into PNG/DICOM + manifest.csv."""

from __future__ import annotations

import argparse

# synthmed.models.sampling.SAMPLERS + the dpm++ alias (kept literal: parsing the CLI must not import torch)
SAMPLER_CHOICES = ["ddpm", "ddim", "dpmpp", "unipc", "flow_euler", "flow_heun", "dpm++"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sample` subcommand."""
    parser = subparsers.add_parser(
        "sample",
        help="sample images per class from a trained model (one seed per image)",
        description="Image k of each class uses seed seed_start + k and is identical whatever --batch-size.",
    )
    parser.add_argument("model", help="run folder (RUN), model folder (RUN/model) or checkpoint folder")
    parser.add_argument("--out", required=True, help="output folder (images/<class>/, manifest.csv, grids/)")
    parser.add_argument("--n-per-class", type=int, required=True, help="images per class")
    parser.add_argument("--classes", nargs="+", default=None, help="class names or indices (default: all)")
    parser.add_argument(
        "--sampler",
        choices=SAMPLER_CHOICES,
        default="dpmpp",
        help="diffusers scheduler (dpmpp = DPM-Solver++ 2M, dpm++ is an alias; flow_euler/flow_heun for "
        "--objective flow_matching models)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps (default: ddpm 1000, ddim 50, dpmpp 20, unipc 20, flow_euler 20, flow_heun 10)",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="classifier-free guidance w: uncond + w (cond - uncond); 1 = none",
    )
    parser.add_argument("--seed-start", type=int, default=0, help="seed of image 0 of each class")
    parser.add_argument("--batch-size", type=int, default=32, help="images per denoising batch")
    parser.add_argument(
        "--format",
        choices=["png", "png16", "dicom", "png+dicom"],
        default="png",
        help="8-bit PNG, 16-bit PNG (grey), DICOM (SyntheticData=YES), or PNG + DICOM",
    )
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="UNet autocast")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--modality", default="OT", help="DICOM Modality tag (e.g. CR, DX, CT, MR; default OT)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the flags into a SampleConfig and sample."""
    from synthmed.models.sampling import sampler_name
    from synthmed.sample.generate import SampleConfig, sample_images

    config = SampleConfig(
        model_dir=args.model,
        out_dir=args.out,
        n_per_class=args.n_per_class,
        classes=args.classes,
        sampler=sampler_name(args.sampler),
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        seed_start=args.seed_start,
        batch_size=args.batch_size,
        format=args.format,
        mixed_precision=args.mixed_precision,
        device=args.device,
        modality=args.modality,
    )
    out = sample_images(config)
    print(f"samples:  {out} ({out / 'manifest.csv'})")
    print(f"grids:    {out / 'grids'}")
    return 0
