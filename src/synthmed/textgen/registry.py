"""The provider registry: name -> factory building an ImageProvider from keyword settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from synthmed.textgen.providers import ImageProvider, RequestBudget


def make_openai(
    *,
    model: str | None = None,
    quality: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_requests: int | None = None,
    max_images: int | None = None,
    max_retries: int = 4,
) -> ImageProvider:
    """OpenAI Images API (key from OPENAI_API_KEY; base URL from --base-url or OPENAI_BASE_URL)."""
    from synthmed.textgen.openai_images import OpenAIImagesProvider

    return OpenAIImagesProvider(
        model=model or "gpt-image-1",
        quality=quality,
        base_url=base_url,
        api_key=api_key,
        budget=RequestBudget(max_requests=max_requests, max_images=max_images),
        max_retries=max_retries,
    )


def make_local_sd(
    *,
    checkpoint: str | Path | None = None,
    lora: str | Path | None = None,
    steps: int = 30,
    guidance_scale: float = 7.5,
    negative_prompt: str | None = None,
    dtype: Literal["float32", "bfloat16"] = "float32",
    scheduler: str = "default",
    batch_size: int = 1,
    device: str = "auto",
) -> ImageProvider:
    """A local diffusers Stable Diffusion folder (`checkpoint`), optionally with a `synthmed finetune` run."""
    from synthmed.models.device import resolve_device
    from synthmed.textgen.local_sd import LocalSDProvider

    device = str(resolve_device(device))
    if checkpoint is None:
        raise ValueError("--provider local-sd needs --checkpoint SD_DIR (a local diffusers Stable Diffusion folder).")
    return LocalSDProvider(
        checkpoint=checkpoint,
        finetune_run=lora,
        steps=steps,
        guidance_scale=guidance_scale,
        negative_prompt=negative_prompt,
        dtype=dtype,
        scheduler=scheduler,
        batch_size=batch_size,
        device=device,
    )


PROVIDERS: dict[str, Callable[..., ImageProvider]] = {"openai": make_openai, "local-sd": make_local_sd}


def build_provider(name: str, **settings) -> ImageProvider:
    """Build provider `name` with `settings` (the factory's keyword arguments)."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}; choose one of {sorted(PROVIDERS)}.")
    return PROVIDERS[name](**settings)
