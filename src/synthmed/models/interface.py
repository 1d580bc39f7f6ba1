"""The one model interface every family implements: a training loss, a guided prediction, save/load."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from PIL import Image

ALL_ROWS = slice(None)
"""The rows of a batch a single process trains on (all of them)."""

Condition = dict[str, torch.Tensor]
"""A batch of conditions: named tensors with the batch in dim 0 (class labels, metadata, caption embeddings)."""


@runtime_checkable
class TrainableModel(Protocol):
    """What `synthmed.train.fit.fit` needs (EDM's preconditioning + loss pair, k-diffusion's Denoiser.loss).

    `network` is the torch module that trains (the loop may wrap it for DDP/autocast and puts the
    raw one back before saving). `loss` draws all its randomness from `generator` (exact resume) for
    the whole global batch, in every process alike, and computes the loss on this process's `rows`
    only: N processes then train exactly as one process at the same global batch.
    """

    network: torch.nn.Module

    def loss(self, batch: Any, *, generator: torch.Generator, rows: slice = ALL_ROWS) -> dict[str, torch.Tensor]:
        """{"loss": scalar to minimise, other named scalars to log} on `rows` of one global training batch."""
        ...

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer, EMA and checkpoints hold: those that require grad (LoRA: the adapter)."""
        return [p for p in self.network.parameters() if p.requires_grad]

    def save(self, folder: Path, *, step: int) -> Path:
        """Write a self-contained model folder (config beside weights) that this family's `load` reads."""
        ...

    def grid(self, *, seed: int) -> Image.Image | None:
        """A preview picture during training (one row per class), or None where none makes sense."""
        ...


@runtime_checkable
class DenoisingModel(TrainableModel, Protocol):
    """A conditional denoiser the one sampler (`synthmed.models.sampling.denoise`) runs with guidance."""

    sample_shape: tuple[int, ...]  # one sample in model space (pixels, or latents), without the batch dim
    scheduler: Any  # the training noise schedule (diffusers); samplers are built from its config
    class_names: list[str]

    def class_condition(self, labels: torch.Tensor) -> Condition:
        """The condition batch for class indices `labels` alone (any other condition unknown)."""
        ...

    def predict(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        """The network output (epsilon, v or flow velocity) for noisy `x` at timestep `t`."""
        ...

    def null_condition(self, condition: Condition) -> Condition:
        """The unconditional branch of classifier-free guidance, row for row."""
        ...

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> images in [-1, 1] (pixels: clamp; latent models: the autoencoder's decoder)."""
        ...


def trainable_state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable (requires_grad) tensors of `network` by name, on the CPU (a checkpoint's online weights)."""
    return {n: p.detach().cpu().contiguous() for n, p in network.named_parameters() if p.requires_grad}


def load_trainable_state(network: torch.nn.Module, state: dict[str, torch.Tensor], *, fix: str) -> None:
    """Copy `state` (from `trainable_state`) into `network`; a missing or foreign tensor raises with `fix`."""
    params = dict(network.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    if set(state) != wanted:
        missing, extra = sorted(wanted - set(state))[:3], sorted(set(state) - wanted)[:3]
        raise ValueError(f"the checkpoint does not match this model (missing {missing}, unexpected {extra}); {fix}.")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block torch's global RNG is seeded with `seed` (for layer initialisers); restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
