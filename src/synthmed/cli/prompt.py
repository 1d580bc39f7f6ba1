"""`synthmed prompt`: generate images from a text prompt with a provider and save them as a synthetic set."""

from __future__ import annotations

import argparse

SCHEDULER_CHOICES = ("default", "ddpm", "ddim", "dpmpp", "unipc", "euler", "pndm", "dpm++")  # textgen.local_sd


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `prompt` subcommand."""
    parser = subparsers.add_parser(
        "prompt",
        help="text-to-image with a hosted API (openai) or a local Stable Diffusion folder (local-sd)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("prompt", help='e.g. "chest x-ray, left lower lobe effusion"')
    parser.add_argument("--provider", choices=["openai", "local-sd"], default="local-sd")
    parser.add_argument("-n", type=int, default=8, help="number of images")
    parser.add_argument("--out", required=True, help="output folder (images + manifest.csv); must not hold a set")
    parser.add_argument("--label", default=None, help="manifest label (default: last phrase of the prompt)")
    parser.add_argument("--label-idx", type=int, default=0, help="manifest label_idx")
    parser.add_argument("--model", default=None, help="openai: dall-e-2, dall-e-3, gpt-image-1 (default), gpt-image-*")
    parser.add_argument("--size", default=None, help="'512' or 'WIDTHxHEIGHT' (default: the model's)")
    parser.add_argument(
        "--quality", default=None, help="openai: standard/hd (dall-e-3), low/medium/high/auto (gpt-image)"
    )
    parser.add_argument("--seed", type=int, default=0, help="local-sd: image i uses seed+i (hosted APIs take no seed)")
    parser.add_argument(
        "--channels",
        type=int,
        choices=[1, 3],
        default=None,
        help="save grey (1) or RGB (3); default keeps what the provider returns",
    )
    parser.add_argument("--format", choices=["png", "dicom", "png+dicom"], default="png")
    hosted = parser.add_argument_group("openai")
    hosted.add_argument(
        "--base-url", default=None, help="API base URL (default: $OPENAI_BASE_URL or api.openai.com/v1)"
    )
    hosted.add_argument("--max-requests", type=int, default=None, help="request budget for this run (retries count)")
    hosted.add_argument("--max-images", type=int, default=None, help="image budget for this run")
    local = parser.add_argument_group("local-sd")
    local.add_argument(
        "--checkpoint", default=None, help="local diffusers Stable Diffusion folder (model_index.json, ...)"
    )
    local.add_argument("--lora", default=None, help="a `synthmed finetune` run folder to apply (LoRA or full UNet)")
    local.add_argument("--steps", type=int, default=30, help="denoising steps")
    local.add_argument("--guidance-scale", type=float, default=7.5)
    local.add_argument("--negative-prompt", default=None)
    local.add_argument(
        "--scheduler",
        choices=list(SCHEDULER_CHOICES),
        default="default",
        help="the synthmed sampler names (dpm++ is an alias of dpmpp), or euler / pndm; default = the checkpoint's",
    )
    local.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    local.add_argument("--batch-size", type=int, default=1)
    local.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synthmed.sample.writer import FORMAT_CHOICES
    from synthmed.textgen.captions import label_from_prompt
    from synthmed.textgen.image_set import generate_image_set
    from synthmed.textgen.providers import parse_size
    from synthmed.textgen.registry import build_provider

    if args.provider == "openai":
        settings = dict(
            model=args.model,
            quality=args.quality,
            base_url=args.base_url,
            max_requests=args.max_requests,
            max_images=args.max_images,
        )
    else:
        settings = dict(
            checkpoint=args.checkpoint,
            lora=args.lora,
            steps=args.steps,
            guidance_scale=args.guidance_scale,
            negative_prompt=args.negative_prompt,
            dtype=args.dtype,
            scheduler=args.scheduler,
            batch_size=args.batch_size,
            device=args.device,
        )
        if args.quality or args.model:
            raise ValueError("--model/--quality are openai options; local-sd takes --checkpoint (and --lora).")
    label = args.label or label_from_prompt(args.prompt)
    provider = build_provider(args.provider, **settings)
    result = generate_image_set(
        provider,
        args.prompt,
        n=args.n,
        out_dir=args.out,
        label=label,
        label_idx=args.label_idx,
        size_px=parse_size(args.size),
        seed=args.seed if args.provider == "local-sd" else None,
        channels=args.channels,
        formats=FORMAT_CHOICES[args.format],
    )
    print(f"wrote {result.n_written} images with label {label!r} to {result.out_dir}")
    return 0
