"""Fixtures shared by every test folder: the shared real-data folder and a tiny prepared dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthmed.data.manifest import DatasetInfo, write_dataset_info, write_manifest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each test on one torch thread: tiny models gain nothing from two, and two OpenMP threads
    spin-wait (10-30x slower) whenever another process holds a core, as on a shared 2-core machine."""
    if "torch" not in sys.modules:  # the study tests check that their package never imports torch
        yield
        return
    torch = sys.modules["torch"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real public medical images); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data folder {SHARED_DATA} is absent (it sits beside the checkout in this workplace)")
    return SHARED_DATA


def make_prepared_dataset(
    root: Path, *, size_px: int = 16, channels: int = 1, per_class: dict | None = None, seed: int = 0
) -> Path:
    """Write a 2-class prepared dataset whose classes differ visibly (a bright blob left vs right)."""
    per_class = per_class or {"train": 12, "val": 4, "test": 6}
    rng = np.random.default_rng(seed)
    classes = ["left", "right"]
    rows = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size_px, 0:size_px]
    for split, count in per_class.items():
        for label_idx, label in enumerate(classes):
            for k in range(count):
                cx = size_px * (0.3 if label_idx == 0 else 0.7) + rng.normal(0, 1)
                cy = size_px * 0.5 + rng.normal(0, 1)
                blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size_px / 6) ** 2))
                img = np.clip(40 + 180 * blob + rng.normal(0, 8, blob.shape), 0, 255).astype(np.uint8)
                if channels == 3:
                    img = np.stack([img, img, img], axis=-1)
                image_id = f"{split}-{label}-{k:03d}"
                Image.fromarray(img).save(root / "images" / f"{image_id}.png")
                rows.append(
                    {
                        "image_id": image_id,
                        "path": f"images/{image_id}.png",
                        "split": split,
                        "label": label,
                        "label_idx": label_idx,
                        "patient_id": f"p{split}{label_idx}{k // 2}",
                    }
                )
    frame = pd.DataFrame(rows)
    write_manifest(frame, root)
    write_dataset_info(
        DatasetInfo(
            name="tiny-blobs",
            modality="test pattern",
            channels=channels,
            image_size_px=size_px,
            classes=classes,
            split_counts=frame["split"].value_counts().to_dict(),
        ),
        root,
    )
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A 16 px grey 2-class prepared dataset (12/4/6 images per class in train/val/test)."""
    return make_prepared_dataset(tmp_path / "tiny_dataset")


@pytest.fixture(scope="session")
def prepared_dataset_factory():
    """`make_prepared_dataset` as a fixture, for tests that need datasets of other sizes or channels."""
    return make_prepared_dataset
