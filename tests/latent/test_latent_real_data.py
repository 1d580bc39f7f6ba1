"""Latent diffusion on real chest X-rays (PneumoniaMNIST from ../shared/data): the autoencoder learns, sets load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from synthmed.cli import main
from synthmed.data.arrays import load_image_arrays
from synthmed.data.manifest import DatasetInfo, write_dataset_info, write_manifest
from synthmed.latent.autoencoder import build_autoencoder, dataset_images, load_autoencoder


def write_pneumonia_subset(npz_path, root, *, per_class: int = 12, size_px: int = 32):
    """A prepared dataset of `per_class` real train images per class, resized to `size_px`."""
    data = np.load(npz_path)
    images, labels = data["train_images"], data["train_labels"][:, 0]
    classes = ["normal", "pneumonia"]
    rows = []
    (root / "images").mkdir(parents=True)
    for label_idx, label in enumerate(classes):
        for k, index in enumerate(np.flatnonzero(labels == label_idx)[:per_class]):
            image_id = f"{label}-{k:03d}"
            Image.fromarray(images[index]).resize((size_px, size_px), Image.Resampling.BILINEAR).save(
                root / "images" / f"{image_id}.png"
            )
            rows.append(
                {
                    "image_id": image_id,
                    "path": f"images/{image_id}.png",
                    "split": "train",
                    "label": label,
                    "label_idx": label_idx,
                }
            )
    write_manifest(pd.DataFrame(rows), root)
    write_dataset_info(
        DatasetInfo(
            name="pneumoniamnist-subset", modality="chest x-ray", channels=1, image_size_px=size_px, classes=classes
        ),
        root,
    )
    return root


def test_latent_pipeline_on_real_chest_xrays(shared_data, tmp_path):
    dataset = write_pneumonia_subset(shared_data / "medmnist" / "pneumoniamnist_28_trainsubset.npz", tmp_path / "ds")
    ae, run, out = tmp_path / "ae", tmp_path / "run", tmp_path / "set"
    assert (
        main(
            [
                "latent",
                "train-autoencoder",
                str(dataset),
                "--out",
                str(ae),
                "--preset",
                "tiny",
                "--max-steps",
                "30",
                "--batch-size",
                "8",
                "--learning-rate",
                "3e-3",
                "--checkpoint-every",
                "30",
            ]
        )
        == 0
    )
    vae, config = load_autoencoder(ae)
    images, _ = dataset_images(dataset, split="train", channels=1, size_px=32)
    torch.manual_seed(0)
    untrained = build_autoencoder(config).eval()
    with torch.no_grad():
        error = [float((m(images).sample - images).abs().mean()) for m in (vae, untrained)]
    assert error[0] < 0.5 * error[1]
    assert (
        main(
            [
                "latent",
                "train",
                str(dataset),
                "--autoencoder",
                str(ae),
                "--out",
                str(run),
                "--preset",
                "tiny",
                "--max-steps",
                "2",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    assert main(["latent", "sample", str(run), "--out", str(out), "--n-per-class", "2", "--steps", "2"]) == 0
    arrays = load_image_arrays(out, classes=["normal", "pneumonia"])
    assert arrays.pixels.shape == (4, 1, 32, 32) and arrays.labels.tolist() == [0, 0, 1, 1]
