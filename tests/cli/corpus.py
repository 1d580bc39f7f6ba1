"""A corpus of damaged inputs, made on the fly: tiny broken images, manifests, weights and folders."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from synthmed.data.manifest import read_manifest, write_manifest


def png_bytes(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut `path` to `keep` of its length (at least a few bytes survive, so the header still looks right)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(8, int(len(data) * keep))])
    return path


def garbage(path: Path, n: int = 64) -> Path:
    """Overwrite `path` with bytes that are no known format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(7, 7 + n)))
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def corrupt_first_image(folder: Path, *, split: str | None = None, how: str = "garbage") -> Path:
    """Damage the first image listed in `folder`'s manifest (in `split` if given); returns its path."""
    frame = read_manifest(folder, required=("image_id", "path", "label"))
    if split is not None:
        frame = frame[frame["split"] == split]
    path = folder / frame["path"].iloc[0]
    return truncate(path) if how == "truncate" else garbage(path)


def drop_column(folder: Path, column: str) -> None:
    frame = read_manifest(folder, required=())
    write_manifest(frame.drop(columns=[column]), folder)


def relabel(folder: Path, label: str) -> None:
    frame = read_manifest(folder, required=())
    frame.loc[frame.index[0], "label"] = label
    write_manifest(frame, folder)


def synthetic_set(folder: Path, classes: list[str], *, per_class: int = 4, size: int = 16) -> Path:
    """A valid synthetic image set (PNG + manifest.csv) with noise images of `classes`."""
    from synthmed.sample.writer import SyntheticSetWriter

    rng = np.random.default_rng(0)
    with SyntheticSetWriter(folder) as writer:
        for label_idx, label in enumerate(classes):
            for seed in range(per_class):
                writer.add(
                    rng.integers(0, 255, (size, size), dtype=np.uint8), label=label, label_idx=label_idx, seed=seed
                )
    return folder


def tiny_model(folder: Path, *, size: int = 16, classes: tuple[str, ...] = ("left", "right")) -> Path:
    """A real (untrained) tiny model folder, as `synthmed train` writes it."""
    from synthmed.models.config import preset_config
    from synthmed.models.unet import build_unet, save_model_folder

    config = preset_config(
        "tiny", image_size_px=size, in_channels=1, num_classes=len(classes), class_names=list(classes)
    )
    save_model_folder(folder, unet=build_unet(config), config=config)
    return folder


def wrong_safetensors(path: Path) -> Path:
    """A valid safetensors file holding tensors no synthmed model has."""
    import torch
    from safetensors.torch import save_file

    save_file({"something.else": torch.zeros(3)}, str(path))
    return path


def wrong_pth(path: Path) -> Path:
    """A valid torch file that is no state dict of the expected network."""
    import torch

    torch.save({"unrelated": torch.zeros(2)}, path)
    return path


def train_argv(dataset: Path, out: Path, *extra: str, steps: int = 2) -> list[str]:
    """`synthmed train` of the tiny preset for `steps` steps, batch 2, full precision."""
    tiny = "--preset tiny --batch-size 2 --mixed-precision no".split()
    return ["train", str(dataset), "--out", str(out), *tiny, "--max-steps", str(steps), *extra]
