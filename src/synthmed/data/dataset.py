"""A prepared dataset as a torch Dataset, and as one in-memory uint8 array for fast CPU training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from synthmed.data.arrays import read_image
from synthmed.data.manifest import DatasetInfo, load_image_set, read_dataset_info


def to_model_range(pixels_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the one intensity convention of every model)."""
    return pixels_uint8.float() / 127.5 - 1.0


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamped and rounded."""
    return ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def load_arrays(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """All images of one split as uint8 `[N, C, H, W]`, their class indices `[N]`, and the info."""
    info = read_dataset_info(root)
    frame = load_image_set(root, split=split)
    if frame.empty:
        raise ValueError(f"{root} has no images in split '{split}'.")
    mode = "L" if info.channels == 1 else "RGB"
    if "label_idx" not in frame.columns:
        raise ValueError(
            f"{Path(root) / 'manifest.csv'} lacks column 'label_idx'; it has {list(frame.columns)}. "
            f"Re-create the dataset with `synthmed prepare`."
        )
    images = np.stack([read_image(p, mode) for p in frame["abs_path"]])
    return images, frame["label_idx"].to_numpy(dtype=np.int64), info


class PreparedDataset(torch.utils.data.Dataset):
    """Images of one split of a prepared dataset.

    Contract: `classes` (list of names), `labels` (int array aligned with rows), `meta`
    (the manifest rows as a DataFrame), `info` (DatasetInfo); `ds[i]` returns
    `{"image": float32 [C, H, W] in [-1, 1], "label": int, "image_id": str}`.
    Images are decoded once and kept in memory as uint8.
    """

    def __init__(
        self, root: str | Path, split: str = "train", *, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    ):
        self.root = Path(root)
        self.split = split
        self.pixels, self.labels, self.info = load_arrays(root, split)
        self.meta = load_image_set(root, split=split)
        self.classes = list(self.info.classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        image = to_model_range(torch.from_numpy(self.pixels[index]))
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": int(self.labels[index]), "image_id": str(self.meta["image_id"][index])}

    def __repr__(self) -> str:
        return (
            f"PreparedDataset({self.info.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.classes}, {self.info.channels}x{self.info.image_size_px}px)"
        )
