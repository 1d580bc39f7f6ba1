"""The optimiser step and the EMA weight swap that every training loop (pixel, latent, fine-tune) shares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch


def optimizer_step(
    accelerator,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    loss: torch.Tensor,
    *,
    clip_norm: float,
    ema=None,
) -> None:
    """Backpropagate `loss`, clip the gradient norm of `params` to `clip_norm`, step, zero, update `ema`."""
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.step(params)


@contextmanager
def ema_weights(ema, params: Iterable[torch.nn.Parameter]) -> Iterator[None]:
    """Inside the block `params` hold the EMA weights; the online weights come back after it, also on error.

    With `ema=None` (EMA switched off) the block sees the online weights and nothing is swapped.
    """
    if ema is None:
        yield
        return
    params = list(params)
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)
