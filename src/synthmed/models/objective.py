"""The training objectives: diffusion (min-SNR-weighted MSE) or flow matching, and label dropout for CFG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from diffusers import DDPMScheduler

from synthmed.models.config import FLOW_PREDICTION
from synthmed.models.interface import Condition, DenoisingModel


def drop_labels(labels: torch.Tensor, *, null_class: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the null class with probability `prob` (classifier-free guidance training)."""
    if prob <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator) < prob
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def draw_noise(
    shape: tuple[int, ...] | torch.Size, *, scheduler: DDPMScheduler, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise of `shape`, then one time per row (a training timestep, or a flow time for a flow model), on the CPU."""
    noise = torch.randn(tuple(shape), generator=generator)
    if scheduler.config.prediction_type == FLOW_PREDICTION:
        return noise, flow_times(shape[0], generator=generator)
    return noise, torch.randint(0, scheduler.config.num_train_timesteps, (shape[0],), generator=generator)


def snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, *, gamma: float | None) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023), for the scheduler's prediction type.

    epsilon: min(SNR, g) / SNR; v_prediction: min(SNR, g) / (SNR + 1); gamma None: all ones.
    """
    if gamma is None:
        return torch.ones(timesteps.shape, dtype=torch.float32)
    alphas = scheduler.alphas_cumprod.to(torch.float32)[timesteps.cpu()]
    snr = alphas / (1 - alphas).clamp_min(1e-8)
    clipped = snr.clamp(max=gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr.clamp_min(1e-8)


Predict = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""`predict(noisy, t, condition)`: the network output for a batch (any family's `DenoisingModel.predict`)."""


def diffusion_loss(
    predict: Predict,
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    condition: Any,
    *,
    generator: torch.Generator | None = None,
    snr_gamma: float | None,
    noise: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean weighted MSE between `predict(noisy, t, condition)` and its target (noise or velocity).

    All randomness (noise, timesteps) is drawn on the CPU from `generator` (`draw_noise`), so a resumed
    run that restores the generator state continues the same random stream; or it is given as `noise`
    and `timesteps` (CPU), e.g. this process's rows of a draw made for the global batch. A
    `flow_prediction` scheduler trains flow matching instead (`flow_matching_loss`, `timesteps` = flow
    times in (0, 1); min-SNR weighting does not apply there).
    """
    if noise is None or timesteps is None:
        if generator is None:
            raise ValueError("diffusion_loss needs a generator, or both noise and timesteps.")
        noise, timesteps = draw_noise(clean.shape, scheduler=scheduler, generator=generator)
    if scheduler.config.prediction_type == FLOW_PREDICTION:
        return flow_matching_loss(
            predict,
            clean,
            condition,
            noise=noise,
            t=timesteps,
            num_train_timesteps=scheduler.config.num_train_timesteps,
        )
    noise = noise.to(clean.device)
    weights = snr_weights(scheduler, timesteps, gamma=snr_gamma).to(clean.device)
    timesteps = timesteps.to(clean.device)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(clean, noise, timesteps)
    else:
        target = noise
    prediction = predict(noisy, timesteps, condition)
    per_sample = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()


def flow_times(
    batch: int, *, generator: torch.Generator, sampling: Literal["logit_normal", "uniform"] = "logit_normal"
) -> torch.Tensor:
    """[batch] flow times t in (0, 1): logit-normal(0, 1) as in SD3 (Esser et al. 2024), or uniform."""
    if sampling == "uniform":
        return torch.rand(batch, generator=generator)
    return torch.sigmoid(torch.randn(batch, generator=generator))


def flow_matching_loss(
    predict: Predict,
    clean: torch.Tensor,
    condition: Any,
    *,
    generator: torch.Generator | None = None,
    num_train_timesteps: int,
    time_sampling: Literal["logit_normal", "uniform"] = "logit_normal",
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flow-matching MSE (rectified flow; Lipman et al. 2023, Liu et al. 2023) on x_t = (1 - t) x0 + t noise.

    `predict` sees timestep t * num_train_timesteps (the convention of diffusers'
    FlowMatchEulerDiscreteScheduler) and predicts the velocity noise - x0. Randomness comes from
    `generator` (CPU) as in `diffusion_loss`, or is given as `noise` and `t`.
    """
    if noise is None or t is None:
        if generator is None:
            raise ValueError("flow_matching_loss needs a generator, or both noise and t.")
        noise = torch.randn(clean.shape, generator=generator)
        t = flow_times(clean.shape[0], generator=generator, sampling=time_sampling)
    noise, t = noise.to(clean.device), t.to(clean.device)
    t_image = t.view(-1, 1, 1, 1)
    noisy = (1 - t_image) * clean + t_image * noise
    prediction = predict(noisy, t * num_train_timesteps, condition)
    return (prediction.float() - (noise - clean).float()).pow(2).mean()


def loss_on_rows(
    model: DenoisingModel, clean: torch.Tensor, condition: Condition, *, draw: tuple, rows: slice, snr_gamma
) -> dict[str, torch.Tensor]:
    """{"loss": `diffusion_loss` of `model`} on `rows` of a global batch whose `draw` = (noise, timesteps)."""
    device, scheduler, (noise, timesteps) = next(model.network.parameters()).device, model.scheduler, draw
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(device)
    loss = diffusion_loss(
        model.predict,
        scheduler,
        clean[rows].to(device),
        {k: v[rows].to(device) for k, v in condition.items()},
        noise=noise[rows],
        timesteps=timesteps[rows],
        snr_gamma=snr_gamma,
    )
    return {"loss": loss}
