"""Write model weights (safetensors) and read weight files (safetensors, .pth/.pt) with errors that say how to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

REWRITE = "re-create it with the command that wrote it (e.g. resume or re-run training)"


def load_safetensors(path: str | Path, *, fix: str = REWRITE) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file; a missing, truncated or foreign file raises a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {fix}.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is damaged or not a safetensors file ({type(exc).__name__}: {exc}); {fix}.") from exc


def load_torch_file(path: str | Path, *, fix: str = REWRITE) -> Any:
    """`torch.load(path, weights_only=True)` on CPU; a truncated or non-torch file raises a one-line error."""
    import pickle
    import warnings

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {fix}.")
    try:
        with warnings.catch_warnings():  # torch warns about pickled code it refuses; the error below says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        if "weights_only" in detail:  # torch refused the pickle's code (random bytes fail otherwise)
            detail = "it holds Python objects, not only tensors, and was refused unopened"  # never load it unsafely
        raise ValueError(
            f"{path} is damaged or not a PyTorch weights file ({type(exc).__name__}: {detail}); {fix}."
        ) from exc


def load_state_dict_into(module: torch.nn.Module, state: dict, *, path: str | Path, fix: str) -> None:
    """`module.load_state_dict(state, strict=True)`; keys or shapes that do not match raise a one-line error."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:300]
        raise ValueError(f"{path} does not match the model it is loaded into ({detail}); {fix}.") from exc


def load_weights(module: torch.nn.Module, path: str | Path, *, fix: str = REWRITE) -> None:
    """Load the .safetensors file `path` into `module` (strict); missing, damaged or foreign files raise with `fix`."""
    load_state_dict_into(module, load_safetensors(path, fix=fix), path=path, fix=fix)


def save_weights(path: str | Path, module: torch.nn.Module, *, file_format: str) -> Path:
    """Write `module`'s state as float32 CPU safetensors tagged {"format": file_format}, fsynced."""
    from safetensors.torch import save_file

    from synthmed.files import fsync_path

    path = Path(path)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"format": file_format})
    fsync_path(path)
    return path
