"""Inference schedulers (DDPM, DDIM, DPM-Solver++, UniPC) and the classifier-free-guidance denoising loop.

One seed per image: image k's initial noise and every per-step noise (DDPM) come from its own
`torch.Generator`, and the UNet is always called on exactly `model_batch_size` rows (padded), because
CPU/GPU matrix kernels round differently for different row counts. Together these make image k
bit-identical whatever batch it is sampled in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, SchedulerMixin, UniPCMultistepScheduler


@dataclass(frozen=True)
class SamplerSpec:
    """How to build one inference scheduler from the training schedule, and its default step count."""

    build: Callable[[dict], SchedulerMixin]
    default_steps: int
    stochastic: bool  # draws fresh noise at each step (needs the per-image generators)


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(lambda cfg: DDPMScheduler.from_config(cfg), 1000, True),
    "ddim": SamplerSpec(lambda cfg: DDIMScheduler.from_config(cfg, timestep_spacing="trailing"), 50, False),
    "dpmpp": SamplerSpec(
        lambda cfg: DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        ),
        20,
        False,
    ),
    "unipc": SamplerSpec(lambda cfg: UniPCMultistepScheduler.from_config(cfg, timestep_spacing="trailing"), 20, False),
}
"""Sampler name -> spec. DPM-Solver++ (Lu et al. 2022), UniPC (Zhao et al. 2023), DDIM (Song et al. 2021)."""


def make_scheduler(sampler: str, train_scheduler: SchedulerMixin) -> SchedulerMixin:
    """A fresh inference scheduler of kind `sampler` sharing the training noise schedule."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}.")
    return SAMPLERS[sampler].build(dict(train_scheduler.config))


def initial_noise(generators: list[torch.Generator], shape: tuple[int, int, int]) -> torch.Tensor:
    """[B, C, H, W] standard normal noise, row k drawn from generators[k] (CPU, float32)."""
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators])


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    *,
    labels: torch.Tensor,
    null_class: int,
    generators: list[torch.Generator],
    image_shape: tuple[int, int, int],
    steps: int,
    guidance_scale: float = 1.0,
    stochastic: bool = False,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    model_batch_size: int = 16,
) -> torch.Tensor:
    """Run the reverse process for one batch; returns images in model range [-1, 1] (float32, CPU).

    Classifier-free guidance (Ho & Salimans 2022): `out = uncond + w * (cond - uncond)`, with the
    conditional and null-class passes batched together; `w = 1` skips the null pass.
    """
    device = torch.device(device)
    labels = labels.to(device)
    scheduler.set_timesteps(steps)
    x = (initial_noise(generators, image_shape) * scheduler.init_noise_sigma).to(device)
    step_kwargs = {"generator": generators} if stochastic else {}
    guided = guidance_scale != 1.0
    class_in = torch.cat([labels, torch.full_like(labels, null_class)]) if guided else labels
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        with autocast:
            out = fixed_batch_forward(
                unet,
                torch.cat([model_in, model_in]) if guided else model_in,
                t,
                class_in,
                model_batch_size=model_batch_size,
            )
        if guided:
            cond, uncond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        x = scheduler.step(out.cpu(), t, x.cpu(), **step_kwargs).prev_sample.to(device)
    return x.float().cpu().clamp(-1, 1)


def fixed_batch_forward(
    unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, *, model_batch_size: int
) -> torch.Tensor:
    """`unet(x, t, labels)` evaluated in chunks of exactly `model_batch_size` rows (last one padded)."""
    rows = x.shape[0]
    pad = -rows % model_batch_size
    if pad:
        x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        labels = torch.cat([labels, labels[-1:].expand(pad)])
    outs = [
        unet(xc, t, class_labels=lc).sample.float()
        for xc, lc in zip(x.split(model_batch_size), labels.split(model_batch_size))
    ]
    return torch.cat(outs)[:rows]
