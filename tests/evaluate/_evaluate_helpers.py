"""Helpers for the evaluate tests: write image sets and prepared-dataset manifests from arrays or real folders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from synthmed.data.manifest import DatasetInfo, write_dataset_info, write_manifest


def write_image_set(folder: Path, pixels: np.ndarray, labels: list[str], *, prefix: str = "s") -> Path:
    """A synthetic image set (manifest.csv + PNGs) from uint8 `[N, C, H, W]` images."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (image, label) in enumerate(zip(pixels, labels)):
        image_id = f"{prefix}{k:05d}"
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(array).save(folder / "images" / f"{image_id}.png")
        rows.append({"image_id": image_id, "path": f"images/{image_id}.png", "label": label, "synthetic": 1})
    write_manifest(pd.DataFrame(rows), folder)
    return folder


def image_folder_dataset(
    root: Path, source: Path, *, per_split: dict[str, int], seed: int = 0, image_size_px: int = 64
) -> Path:
    """A prepared-dataset manifest pointing at an ImageFolder's files (`source/{train,test}/CLASS/*`).

    `per_split` caps images per split (drawn at random); "val" is carved out of "train".
    """
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in (source / "train").iterdir() if p.is_dir())
    rows = []
    files = {split: sorted((source / split).glob("*/*")) for split in ("train", "test")}
    train_files = list(rng.permutation(files["train"]))
    chosen = {
        "val": train_files[: per_split.get("val", 0)],
        "train": train_files[per_split.get("val", 0) : per_split.get("val", 0) + per_split["train"]],
        "test": list(rng.permutation(files["test"]))[: per_split["test"]],
    }
    for split, paths in chosen.items():
        for path in paths:
            label = path.parent.name
            rows.append(
                {
                    "image_id": f"{split}-{path.stem}",
                    "path": str(path.resolve()),
                    "split": split,
                    "label": label,
                    "label_idx": classes.index(label),
                }
            )
    frame = pd.DataFrame(rows)
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(frame, root)
    write_dataset_info(
        DatasetInfo(
            name=source.name,
            modality="chest x-ray",
            channels=1,
            image_size_px=image_size_px,
            classes=classes,
            split_counts=frame["split"].value_counts().to_dict(),
        ),
        root,
    )
    return root


def smooth_images(count: int, *, size_px: int = 32, seed: int = 0, shared: float = 0.6) -> np.ndarray:
    """Grey uint8 `[N, 1, S, S]` images: a common smooth pattern plus an individual smooth one (alike but distinct)."""
    rng = np.random.default_rng(seed)
    template = gaussian_filter(rng.normal(size=(size_px, size_px)), 3)
    images = []
    for _ in range(count):
        own = gaussian_filter(rng.normal(size=(size_px, size_px)), 2)
        mix = shared * template / template.std() + (1 - shared) * own / own.std()
        images.append(np.clip(128 + 40 * mix, 0, 255).astype(np.uint8))
    return np.stack(images)[:, None]


def plant_copies(
    train: np.ndarray, index: np.ndarray, *, seed: int = 0, max_shift_px: int = 3
) -> tuple[np.ndarray, list[str]]:
    """Training images altered four ways, in turn: flipped, shifted, JPEG re-encoded (q=70), noised (sigma 6)."""
    rng = np.random.default_rng(seed)
    out, kinds = [], []
    for k, i in enumerate(index):
        image = train[i, 0].copy()
        kind = ("flip", "shift", "jpeg", "noise")[k % 4]
        if kind == "flip":
            image = image[:, ::-1]
        elif kind == "shift":
            dy, dx = rng.integers(1, max_shift_px + 1, 2) * rng.choice([-1, 1], 2)
            image = np.pad(image, max_shift_px, mode="edge")[
                max_shift_px + dy : max_shift_px + dy + image.shape[0],
                max_shift_px + dx : max_shift_px + dx + image.shape[1],
            ]
        elif kind == "jpeg":
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=70)
            image = np.asarray(Image.open(buffer).convert("L"))
        else:
            image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(image)[None])
        kinds.append(kind)
    return np.stack(out), kinds
