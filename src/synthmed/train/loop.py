"""Pixel training: build the class-conditional UNet and the in-memory image data, then run the one loop."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.files import portable_name
from synthmed.models.config import objective_of
from synthmed.models.pixel import PixelDiffusion
from synthmed.train.config import TrainConfig
from synthmed.train.fit import TrainingData, budget_progress, fit, lr_factor
from synthmed.train.run_files import CONFIG_NAME

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_NAME", "budget_progress", "lr_factor", "train"]


def train(config: TrainConfig, *, run_dir: str | Path, resume: bool = False) -> Path:
    """Train a class-conditional pixel diffusion model; returns RUN/model (EMA weights, enough to sample)."""
    pixels, labels, info = load_arrays(config.dataset, config.split)  # uint8, held in memory
    _check_data(config, pixels, labels, info.classes)
    images = torch.from_numpy(pixels)
    label_tensor = torch.from_numpy(np.array(labels, dtype=np.int64))
    prediction = config.model.prediction_type
    objective = (
        "flow matching"
        if objective_of(prediction) == "flow_matching"
        else f"diffusion, min-SNR gamma {config.snr_gamma}"
    )
    about = (
        f"training on {len(labels)} images of {config.dataset} ({config.split}), classes {info.classes}; "
        f"objective {objective} (prediction type {prediction})"
    )
    model = PixelDiffusion.create(config.model, seed=config.seed, snr_gamma=config.snr_gamma, hflip=config.hflip)
    model.extra = {"dataset": portable_name(config.dataset, parts=1)}
    model.grid_per_class, model.grid_steps = config.grid_per_class, config.grid_sampler_steps
    data = TrainingData(
        labels=np.asarray(labels), fetch=lambda index: (to_model_range(images[index]), label_tensor[index])
    )
    return fit(model, data, config, run_dir=run_dir, resume=resume, about=about)


def _check_data(config: TrainConfig, pixels: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    channels, size = pixels.shape[1], pixels.shape[2]
    if channels != config.model.in_channels:
        raise ValueError(
            f"{config.dataset} has {channels}-channel images but the model expects "
            f"{config.model.in_channels}; build the config with train_config_for_dataset()."
        )
    if size != config.model.image_size_px or pixels.shape[3] != size:
        raise ValueError(
            f"{config.dataset} has {pixels.shape[2]}x{pixels.shape[3]} px images but the model is "
            f"for {config.model.image_size_px} px; re-prepare with --size {config.model.image_size_px}."
        )
    if len(classes) != config.model.num_classes or labels.min() < 0 or labels.max() >= config.model.num_classes:
        raise ValueError(
            f"{config.dataset} has classes {classes} (label_idx {labels.min()}..{labels.max()}) but "
            f"the model has {config.model.num_classes} classes."
        )
