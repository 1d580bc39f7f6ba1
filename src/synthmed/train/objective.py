"""The diffusion training objective: noising, label dropout for CFG, and min-SNR-weighted MSE."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler


def drop_labels(labels: torch.Tensor, *, null_class: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the null class with probability `prob` (classifier-free guidance training)."""
    if prob <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator) < prob
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def draw_noise(
    shape: tuple[int, ...] | torch.Size, *, num_train_timesteps: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normal noise of `shape` and one training timestep per row, drawn on the CPU in that order."""
    noise = torch.randn(tuple(shape), generator=generator)
    timesteps = torch.randint(0, num_train_timesteps, (shape[0],), generator=generator)
    return noise, timesteps


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
    unet: torch.nn.Module,
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    snr_gamma: float | None,
    noise: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean weighted MSE between the UNet output and its target (noise or velocity) at random timesteps.

    All randomness (noise, timesteps) is drawn on the CPU from `generator` (see `draw_noise`), so a
    resumed run that restores the generator state continues the same random stream; or it is given
    as `noise` and `timesteps` (CPU), e.g. this process's rows of a draw made for the global batch.
    """
    if noise is None or timesteps is None:
        if generator is None:
            raise ValueError("diffusion_loss needs a generator, or both noise and timesteps.")
        noise, timesteps = draw_noise(
            clean.shape, num_train_timesteps=scheduler.config.num_train_timesteps, generator=generator
        )
    noise = noise.to(clean.device)
    weights = snr_weights(scheduler, timesteps, gamma=snr_gamma).to(clean.device)
    timesteps = timesteps.to(clean.device)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(clean, noise, timesteps)
    else:
        target = noise
    prediction = unet(noisy, timesteps, class_labels=labels).sample
    per_sample = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()
