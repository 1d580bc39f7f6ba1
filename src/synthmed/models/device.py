"""Turn a --device choice ('auto', 'cpu', 'cuda', 'cuda:1', ...) into a torch.device, with a clear error."""

from __future__ import annotations

import os

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when a GPU is visible, else cpu; a cuda choice without a visible GPU is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for but no CUDA GPU is visible; use --device cpu.")
    return torch.device(device)


def launched_without_gpu() -> bool:
    """True in one of several processes (WORLD_SIZE > 1, set by `accelerate launch` / torchrun) on a machine without
    a CUDA GPU: accelerate joins such processes (over gloo) only when told cpu=True, else each runs alone."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
