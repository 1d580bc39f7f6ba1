"""Local Stable Diffusion (diffusers folder, offline) as an ImageProvider, optionally with a fine-tuned run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from synthmed.files import portable_name
from synthmed.models.sampling import SAMPLER_ALIASES, SAMPLERS, image_seeds, make_scheduler
from synthmed.textgen.providers import GeneratedImage, SizePx, size_as_pair

log = logging.getLogger(__name__)

SD_REQUIRED_PARTS = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer",
    "scheduler/scheduler_config.json",
)
"""What a diffusers-format Stable Diffusion folder must hold (weights sit beside each config.json)."""

SCHEDULER_NAMES = ("default", *SAMPLERS, "euler", "pndm", *SAMPLER_ALIASES)
"""The synthmed sampler names (shared with `synthmed sample`; `dpm++` is the alias of `dpmpp`) plus two
Stable Diffusion extras; `default` keeps the checkpoint's own scheduler."""
Dtype = Literal["float32", "bfloat16"]


def check_sd_folder(checkpoint: str | Path) -> Path:
    """Return `checkpoint` as a Path, or raise FileNotFoundError naming every missing part."""
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Stable Diffusion folder {folder} does not exist. Pass --checkpoint DIR: a diffusers-format "
            f"folder holding {', '.join(SD_REQUIRED_PARTS)} (e.g. made by `pipeline.save_pretrained(DIR)` "
            f"or a downloaded stable-diffusion-v1-5 snapshot). synthmed downloads nothing."
        )
    missing = [part for part in SD_REQUIRED_PARTS if not (folder / part).exists()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete diffusers Stable Diffusion folder: missing {missing}. Expected "
            f"{', '.join(SD_REQUIRED_PARTS)}, with the weights (*.safetensors) beside each config.json."
        )
    return folder


def _make_scheduler(name: str, current):
    """The scheduler `name` on the checkpoint's noise schedule: a synthmed sampler, or euler / pndm."""
    from diffusers import EulerDiscreteScheduler, PNDMScheduler

    extras = {"euler": EulerDiscreteScheduler, "pndm": PNDMScheduler}
    return extras[name].from_config(current.config) if name in extras else make_scheduler(name, current)


def load_sd_pipeline(
    checkpoint: str | Path,
    *,
    finetune_run: str | Path | None = None,
    dtype: Dtype = "float32",
    scheduler: str = "default",
    device: str = "cpu",
):
    """A StableDiffusionPipeline from a local folder (local_files_only), with a `synthmed finetune` run applied.

    `finetune_run` adds the run's LoRA weights (or swaps in its fully fine-tuned UNet).
    """
    import torch
    from diffusers import StableDiffusionPipeline

    from synthmed.textgen.finetune_run import apply_finetune_run

    folder = check_sd_folder(checkpoint)
    if scheduler not in SCHEDULER_NAMES:
        raise ValueError(f"scheduler {scheduler!r} unknown; use one of {list(SCHEDULER_NAMES)}.")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            folder, local_files_only=True, dtype=torch_dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"could not load Stable Diffusion from {folder}: {exc}. Check that every "
            f"component folder holds its weights."
        ) from exc
    if finetune_run is not None:
        apply_finetune_run(pipe, finetune_run)
    if scheduler != "default":
        pipe.scheduler = _make_scheduler(scheduler, pipe.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class LocalSDProvider:
    """`ImageProvider` for a local Stable Diffusion folder; image `i` uses its own generator seeded `seed + i`."""

    name = "local-sd"

    def __init__(
        self,
        *,
        checkpoint: str | Path,
        finetune_run: str | Path | None = None,
        steps: int = 30,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
        dtype: Dtype = "float32",
        scheduler: str = "default",
        batch_size: int = 1,
        device: str = "cpu",
    ):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.checkpoint = str(Path(checkpoint).expanduser().resolve())
        self.finetune_run = None if finetune_run is None else str(Path(finetune_run).expanduser().resolve())
        self.pipe = load_sd_pipeline(
            checkpoint, finetune_run=finetune_run, dtype=dtype, scheduler=scheduler, device=device
        )
        self.model = Path(self.checkpoint).name + (f"+{Path(self.finetune_run).name}" if self.finetune_run else "")
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.dtype = dtype
        self.scheduler_name = (
            type(self.pipe.scheduler).__name__ if scheduler == "default" else SAMPLER_ALIASES.get(scheduler, scheduler)
        )
        self.max_images_per_call = batch_size
        self.device = device

    @property
    def default_size_px(self) -> int:
        """The resolution the UNet was trained for (UNet sample_size times the VAE scale factor)."""
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    def generate(
        self, prompt: str, *, n: int = 1, size_px: SizePx | None = None, seed: int | None = None, **options: Any
    ) -> list[GeneratedImage]:
        """`n` images; `options` may override steps, guidance_scale, negative_prompt."""
        import torch

        if not prompt.strip():
            raise ValueError("the prompt is empty: describe the image to generate.")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        width, height = size_as_pair(size_px if size_px is not None else self.default_size_px)
        factor = int(self.pipe.vae_scale_factor)
        if width % factor or height % factor:
            raise ValueError(f"size {width}x{height} must be a multiple of {factor} px for this checkpoint.")
        seed = 0 if seed is None else int(seed)
        steps = int(options.pop("steps", self.steps))
        guidance = float(options.pop("guidance_scale", self.guidance_scale))
        negative = options.pop("negative_prompt", self.negative_prompt)
        if options:
            raise ValueError(
                f"local-sd does not take option(s) {sorted(options)}; it takes steps, guidance_scale, negative_prompt."
            )
        parameters = {
            "size": f"{width}x{height}",
            "steps": steps,
            "guidance_scale": guidance,
            "sampler": self.scheduler_name,
            "checkpoint": portable_name(self.checkpoint, parts=1),
            "dtype": self.dtype,
        }
        if negative:
            parameters["negative_prompt"] = negative
        if self.finetune_run:
            parameters["finetune_run"] = portable_name(self.finetune_run, parts=1)
        images: list[GeneratedImage] = []
        for start in range(0, n, self.max_images_per_call):
            seeds = image_seeds(n, seed)[start : start + self.max_images_per_call]  # the rule of every family
            generators = [torch.Generator().manual_seed(s) for s in seeds]  # CPU: same images on any device
            with torch.inference_mode():
                result = self.pipe(
                    prompt=[prompt] * len(seeds),
                    negative_prompt=[negative] * len(seeds) if negative else None,
                    height=height,
                    width=width,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=generators,
                    output_type="pil",
                )
            images.extend(
                GeneratedImage(
                    image=img, prompt=prompt, provider=self.name, model=self.model, seed=s, parameters=dict(parameters)
                )
                for img, s in zip(result.images, seeds)
            )
        return images
