"""The one sampler: schedulers (DDPM, DDIM, DPM-Solver++, UniPC, flow Euler/Heun) and the guided denoising loop.

Every family (pixel, latent) samples through `denoise` with a `DenoisingModel`. One seed per image:
image k's initial noise and every per-step noise (DDPM) come from its own `torch.Generator`, and the
network is always called on exactly `model_batch_size` rows (padded), because CPU/GPU matrix kernels
round differently for different row counts. Together these make image k bit-identical whatever batch
it is sampled in.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    SchedulerMixin,
    UniPCMultistepScheduler,
)

from synthmed.models.config import FLOW_PREDICTION
from synthmed.models.interface import Condition, DenoisingModel


@dataclass(frozen=True)
class SamplerSpec:
    """How to build one inference scheduler from the training schedule, and its default step count."""

    build: Callable[[dict], SchedulerMixin]
    default_steps: int
    stochastic: bool  # draws fresh noise at each step (needs the per-image generators)
    flow: bool = False  # for flow-matching models (prediction_type flow_prediction) only


class _UnscaledInput:
    """The two hooks `denoise` calls that diffusers' flow schedulers lack: x_1 is unit noise, fed unscaled."""

    init_noise_sigma = 1.0

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor | None = None) -> torch.Tensor:
        return sample


class FlowEulerScheduler(_UnscaledInput, FlowMatchEulerDiscreteScheduler):
    """diffusers' FlowMatchEulerDiscreteScheduler (Euler steps along the learned flow) for `denoise`."""


class FlowHeunScheduler(_UnscaledInput, FlowMatchHeunDiscreteScheduler):
    """diffusers' FlowMatchHeunDiscreteScheduler (Heun's 2nd order, two UNet calls per step) for `denoise`."""


def _flow(scheduler_class: type[SchedulerMixin]) -> Callable[[dict], SchedulerMixin]:
    """Build a flow scheduler on the training schedule's timestep scale (the only setting the two share)."""
    return lambda cfg: scheduler_class(num_train_timesteps=cfg["num_train_timesteps"])


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
    "flow_euler": SamplerSpec(_flow(FlowEulerScheduler), 20, False, True),
    "flow_heun": SamplerSpec(_flow(FlowHeunScheduler), 10, False, True),
}
"""Sampler name -> spec. DPM-Solver++ (Lu et al. 2022), UniPC (Zhao et al. 2023), DDIM (Song et al. 2021);
flow_euler / flow_heun integrate a flow-matching model's ODE from t = 1 (noise) to 0 (Esser et al. 2024).
These names are used everywhere (CLI flags, manifests, local Stable Diffusion); a new sampler is one entry."""

SAMPLER_ALIASES = {"dpm++": "dpmpp"}
"""Accepted spellings of sampler names (documented alias: `dpm++` is `dpmpp`)."""


def sampler_name(name: str) -> str:
    """The canonical sampler name of `name` (aliases resolved); unknown names raise with the choices."""
    canonical = SAMPLER_ALIASES.get(name, name)
    if canonical not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}.")
    return canonical


def is_flow_model(train_scheduler: SchedulerMixin) -> bool:
    """True when the training schedule belongs to a flow-matching model (prediction_type flow_prediction)."""
    return train_scheduler.config.get("prediction_type") == FLOW_PREDICTION


def default_sampler(train_scheduler: SchedulerMixin) -> str:
    """The sampler to use when none is asked for: flow_euler for flow matching, dpmpp for diffusion."""
    return "flow_euler" if is_flow_model(train_scheduler) else "dpmpp"


def make_scheduler(sampler: str, train_scheduler: SchedulerMixin) -> SchedulerMixin:
    """A fresh inference scheduler of kind `sampler` sharing the training noise schedule."""
    sampler = check_sampler_fits(sampler, train_scheduler)
    return SAMPLERS[sampler].build(dict(train_scheduler.config))


def check_sampler_fits(sampler: str, train_scheduler: SchedulerMixin) -> str:
    """`sampler`'s canonical name; refused when it does not fit the model's objective (flow vs diffusion)."""
    sampler = sampler_name(sampler)
    flow_model = is_flow_model(train_scheduler)
    if SAMPLERS[sampler].flow != flow_model:
        fitting = sorted(name for name, spec in SAMPLERS.items() if spec.flow == flow_model)
        kind = "flow matching" if flow_model else f"diffusion ({train_scheduler.config.get('prediction_type')})"
        raise ValueError(
            f"sampler {sampler!r} does not fit this model: it was trained with {kind}; choose one of {fitting}."
        )
    return sampler


def image_seeds(n_per_class: int, seed_start: int = 0) -> list[int]:
    """The one seed rule of every family: image k of each class uses seed `seed_start + k`."""
    return list(range(seed_start, seed_start + n_per_class))


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """[B, *shape] standard normal noise, row k drawn from generators[k] (CPU, float32)."""
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators])


def concat_conditions(first: Condition, second: Condition) -> Condition:
    """Two condition batches stacked row-wise (the conditional and null passes of guidance in one call)."""
    return {k: torch.cat([first[k], second[k]]) for k in first}


@torch.no_grad()
def denoise(
    model: DenoisingModel,
    scheduler: SchedulerMixin,
    *,
    condition: Condition,
    generators: list[torch.Generator],
    steps: int,
    guidance_scale: float = 1.0,
    stochastic: bool = False,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    model_batch_size: int = 16,
) -> torch.Tensor:
    """Run the reverse process for one batch and decode it; returns images in [-1, 1] (float32, CPU).

    Classifier-free guidance (Ho & Salimans 2022): `out = uncond + w * (cond - uncond)`, with the
    conditional and null passes batched together; `w = 1` skips the null pass.
    """
    device = torch.device(device)
    scheduler.set_timesteps(steps)
    x = (initial_noise(generators, model.sample_shape) * scheduler.init_noise_sigma).to(device)
    step_kwargs = {"generator": generators} if stochastic else {}
    guided = guidance_scale != 1.0
    both = concat_conditions(condition, model.null_condition(condition)) if guided else condition
    both = {k: v.to(device) for k, v in both.items()}
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        with autocast:
            out = in_fixed_batches(
                functools.partial(_predict_at, model, t),
                torch.cat([model_in, model_in]) if guided else model_in,
                both,
                model_batch_size=model_batch_size,
            )
        if guided:
            cond, uncond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        # On the model's device (CPU generators are fine: diffusers draws on CPU and moves the noise).
        x = scheduler.step(out.float(), t, x, **step_kwargs).prev_sample
    decoded = in_fixed_batches(lambda xc, _: model.decode(xc), x.float(), {}, model_batch_size=model_batch_size)
    return decoded.cpu().clamp(-1, 1)


def _predict_at(model: DenoisingModel, t: torch.Tensor, x: torch.Tensor, condition: Condition) -> torch.Tensor:
    return model.predict(x, t, condition)


def in_fixed_batches(
    fn: Callable[[torch.Tensor, Condition], torch.Tensor],
    x: torch.Tensor,
    condition: Condition,
    *,
    model_batch_size: int,
) -> torch.Tensor:
    """`fn(x, condition)` evaluated in chunks of exactly `model_batch_size` rows (last one padded), float32."""
    rows = x.shape[0]
    pad = -rows % model_batch_size
    if pad:
        x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        condition = {k: torch.cat([v, v[-1:].expand(pad, *v.shape[1:])]) for k, v in condition.items()}
    chunks = [
        fn(xc, {k: v[i : i + model_batch_size] for k, v in condition.items()}).float()
        for i, xc in zip(range(0, len(x), model_batch_size), x.split(model_batch_size))
    ]
    return torch.cat(chunks)[:rows]
