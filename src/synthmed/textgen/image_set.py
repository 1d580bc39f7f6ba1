"""Run a provider for one prompt and save every image as it arrives into a synthetic image set."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthmed.sample.writer import SyntheticSetWriter
from synthmed.textgen.providers import GeneratedImage, ImageProvider, ProviderError, SizePx

log = logging.getLogger(__name__)

MANIFEST_KEYS = ("sampler", "steps", "guidance_scale", "checkpoint")
"""Provider parameters that have their own SYNTHETIC_COLUMNS column; the rest go to `parameters` (JSON)."""


@dataclass(frozen=True)
class PromptRunResult:
    """Where the set is and how many images it holds."""

    out_dir: Path
    n_written: int


def image_pixels(generated: GeneratedImage, *, channels: int | None) -> np.ndarray:
    """[H, W] (channels=1) or [H, W, 3] uint8 pixels; `None` keeps grey images grey and the rest RGB."""
    image = generated.image
    if channels == 1 or (channels is None and image.mode in ("L", "I", "I;16")):
        image = image.convert("L")
    else:
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def provenance_of(generated: GeneratedImage) -> dict[str, Any]:
    """Manifest columns for one image: provider, model, prompt, sampler/steps/guidance/checkpoint, parameters."""
    params = dict(generated.parameters)
    row: dict[str, Any] = {"provider": generated.provider, "model": generated.model, "prompt": generated.prompt}
    for key in MANIFEST_KEYS:
        if key in params:
            row[key] = params.pop(key)
    row["parameters"] = json.dumps(params, sort_keys=True)
    row["revised_prompt"] = generated.revised_prompt or ""
    return row


def generate_image_set(
    provider: ImageProvider,
    prompt: str,
    *,
    n: int,
    out_dir: str | Path,
    label: str,
    label_idx: int = 0,
    size_px: SizePx | None = None,
    seed: int | None = None,
    channels: int | None = None,
    formats: tuple[str, ...] = ("png",),
    options: dict[str, Any] | None = None,
) -> PromptRunResult:
    """Ask `provider` for `n` images in batches, writing each batch before asking for the next.

    If the provider fails midway (refusal, budget, outage) the images already received stay on
    disk with their manifest, and the error says how many were kept.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    out_dir = Path(out_dir)
    budget = getattr(provider, "budget", None)
    if budget is not None:  # refuse up front a job that cannot fit the run's budget
        budget.check(requests=math.ceil(n / provider.max_images_per_call), images=n)
    written, created = 0, not out_dir.exists()
    try:
        written = _generate(
            provider,
            prompt,
            n=n,
            out_dir=out_dir,
            label=label,
            label_idx=label_idx,
            size_px=size_px,
            seed=seed,
            channels=channels,
            formats=formats,
            options=options,
        )
    except BaseException:
        images = out_dir / "images"
        if not (images.is_dir() and any(p.is_file() for p in images.rglob("*"))):
            _discard_empty_set(out_dir, created)  # nothing saved: leave no header-only manifest behind
        raise
    log.info("wrote %d images for %r to %s", written, prompt, out_dir)
    return PromptRunResult(out_dir=out_dir, n_written=written)


def _discard_empty_set(out_dir: Path, created: bool) -> None:
    """Remove what a run that saved no image wrote: its manifest, and the folder if this run made it."""
    import shutil

    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
    else:
        (out_dir / "manifest.csv").unlink(missing_ok=True)


def _generate(
    provider: ImageProvider,
    prompt: str,
    *,
    n: int,
    out_dir: Path,
    label: str,
    label_idx: int,
    size_px: SizePx | None,
    seed: int | None,
    channels: int | None,
    formats: tuple[str, ...],
    options: dict[str, Any] | None,
) -> int:
    written = 0
    with (
        SyntheticSetWriter(out_dir, formats=formats) as writer,
        tqdm(total=n, desc=f"{provider.name}", unit="img") as bar,
    ):
        while written < n:
            count = min(provider.max_images_per_call, n - written)
            batch_seed = None if seed is None else seed + written
            try:
                batch = provider.generate(prompt, n=count, size_px=size_px, seed=batch_seed, **dict(options or {}))
            except ProviderError as exc:
                if written:
                    raise type(exc)(f"{exc} ({written} of {n} images were saved in {out_dir} before this).") from exc
                raise
            for generated in batch:
                image_id = None if generated.seed is not None else f"{label}_n{written:06d}"
                writer.add(
                    image_pixels(generated, channels=channels),
                    label=label,
                    label_idx=label_idx,
                    seed=generated.seed,
                    provenance=provenance_of(generated),
                    image_id=None if image_id is None else _safe_id(image_id),
                )
                written += 1
                bar.update(1)
    return written


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
