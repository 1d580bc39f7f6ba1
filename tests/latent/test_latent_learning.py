"""The latent model learns its conditions: class (blob side) and sex (overall brightness) show in the samples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthmed.cli import main
from synthmed.data.arrays import load_image_arrays
from synthmed.data.manifest import read_manifest, write_manifest


@pytest.mark.slow
def test_class_and_sex_conditioning_are_learned(tmp_path, prepared_dataset_factory):
    dataset = prepared_dataset_factory(tmp_path / "ds", size_px=32, per_class={"train": 16})
    frame = read_manifest(dataset)
    frame["sex"] = np.where(frame.index % 2 == 0, "F", "M")
    write_manifest(frame, dataset)
    for path, sex in zip(frame["path"], frame["sex"]):
        if sex == "M":  # male images are darker: sex must be read from the metadata to reproduce it
            pixels = np.asarray(Image.open(dataset / path), dtype=float)
            Image.fromarray((pixels * 0.4).astype(np.uint8)).save(dataset / path)
    ae, run = tmp_path / "ae", tmp_path / "run"
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
                "60",
                "--batch-size",
                "8",
                "--learning-rate",
                "3e-3",
                "--checkpoint-every",
                "60",
            ]
        )
        == 0
    )
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
                "120",
                "--batch-size",
                "16",
                "--learning-rate",
                "3e-3",
                "--checkpoint-every",
                "120",
                "--ema-decay",
                "0.9",
            ]
        )
        == 0
    )
    brightness, side = {}, {}
    for sex in ("F", "M"):
        out = tmp_path / f"set_{sex}"
        assert (
            main(
                [
                    "latent",
                    "sample",
                    str(run),
                    "--out",
                    str(out),
                    "--n-per-class",
                    "4",
                    "--steps",
                    "10",
                    "--guidance-scale",
                    "2",
                    "--sex",
                    sex,
                ]
            )
            == 0
        )
        arrays = load_image_arrays(out, classes=["left", "right"])
        pixels = arrays.pixels[:, 0].astype(float)
        brightness[sex] = pixels.mean()
        left_minus_right = pixels[:, :, :16].mean((1, 2)) - pixels[:, :, 16:].mean((1, 2))
        side[sex] = (left_minus_right[arrays.labels == 0], left_minus_right[arrays.labels == 1])
    assert brightness["F"] > 1.4 * brightness["M"]
    for left, right in side.values():
        assert (left > 10).all() and (right < -10).all()
