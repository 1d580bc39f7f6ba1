"""Deterministic data order: the batch at step s is a function of (seed, step) alone, so resume is exact."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n: int, batch_size: int, *, seed: int, step: int) -> np.ndarray:
    """Indices of the `batch_size` images used at `step`: consecutive slices of per-epoch permutations."""
    if n <= 0:
        raise ValueError("cannot draw batches from an empty dataset.")
    positions = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, n)
    return np.array([_epoch_permutation(n, seed, int(e))[o] for e, o in zip(epochs, offsets)], dtype=np.int64)


def balanced_batch_indices(labels: np.ndarray, batch_size: int, *, seed: int, step: int, power: float) -> np.ndarray:
    """Indices drawn with replacement, image probability proportional to (its class's count) ** -power.

    power 0 draws as the data is (every image equally likely); power 1 draws every class equally often,
    so a minority class (e.g. normal at 10% of PneumoniaMNIST's train subset) gets as many updates as
    the majority. Like `batch_indices`, the draw is a function of (seed, step) alone.
    """
    if len(labels) == 0:
        raise ValueError("cannot draw batches from an empty dataset.")
    counts = np.bincount(labels)
    weights = counts[labels].astype(np.float64) ** -power
    rng = np.random.default_rng([seed, step, 1])
    return rng.choice(len(labels), size=batch_size, replace=True, p=weights / weights.sum())
