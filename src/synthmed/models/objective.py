"""The diffusion training objective: noising, label dropout for CFG, and min-SNR-weighted MSE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDPMScheduler


def drop_labels(labels: torch.Tensor, *, null_class: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the null class with probability `prob` (classifier-free guidance training)."""
    if prob <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator) < prob
    return torch.where(drop, torch.full_like(labels, null_class), labels)


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


def diffusion_loss(
    predict: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    condition: Any,
    *,
    generator: torch.Generator,
    snr_gamma: float | None,
) -> torch.Tensor:
    """Mean weighted MSE between `predict(noisy, t, condition)` and its target (noise or velocity).

    All randomness (noise, timesteps) is drawn on the CPU from `generator`, so a resumed run that
    restores the generator state continues the same random stream.
    """
    batch = clean.shape[0]
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
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
