"""`latent sample` and `synthmed sample` on a latent run: one set of flags, the same images, png16 output."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.cli import main
from synthmed.data.manifest import load_image_set


@pytest.fixture
def latent_run(dataset32: Path, tmp_path: Path) -> Path:
    """A latent run of one autoencoder step and one UNet step (tiny presets)."""
    ae, run = tmp_path / "ae", tmp_path / "run"
    tiny = ["--preset", "tiny", "--max-steps", "1", "--batch-size", "4"]
    assert main(["latent", "train-autoencoder", str(dataset32), "--out", str(ae), *tiny]) == 0
    assert main(["latent", "train", str(dataset32), "--autoencoder", str(ae), "--out", str(run), *tiny]) == 0
    return run


def _pixels(folder: Path) -> list[np.ndarray]:
    frame = load_image_set(folder).sort_values(["label", "seed"])
    return [np.asarray(Image.open(folder / path)) for path in frame["path"]]


def test_sample_forwards_a_latent_run_with_the_same_flags(latent_run: Path, tmp_path: Path, caplog) -> None:
    flags = ["--n-per-class", "2", "--steps", "2", "--format", "png16"]
    forwarded, direct, old = tmp_path / "forwarded", tmp_path / "direct", tmp_path / "old"
    assert main(["sample", str(latent_run), "--out", str(forwarded), *flags, "--classes", "left,right"]) == 0
    assert main(["latent", "sample", str(latent_run), "--out", str(direct), *flags, "--classes", "left", "right"]) == 0
    drawn = load_image_set(forwarded)
    assert set(drawn["provider"]) == {"synthmed-latent"} and set(drawn["bit_depth"]) == {16}
    assert sorted(drawn["seed"]) == [0, 0, 1, 1] and set(drawn["sampler"]) == {"ddim"}  # the latent default
    assert all(a.dtype == np.uint16 and np.array_equal(a, b) for a, b in zip(_pixels(forwarded), _pixels(direct)))

    with caplog.at_level(logging.WARNING):  # --seed: the deprecated spelling of --seed-start
        assert (
            main(
                [
                    "latent",
                    "sample",
                    str(latent_run),
                    "--out",
                    str(old),
                    "--n-per-class",
                    "1",
                    "--seed",
                    "5",
                    "--steps",
                    "2",
                ]
            )
            == 0
        )
    assert "--seed is deprecated" in caplog.text and set(load_image_set(old)["seed"]) == {5}
    argv = ["latent", "sample", str(latent_run), "--out", str(tmp_path / "x"), "--n-per-class", "1"]
    assert main([*argv, "--seed", "5", "--seed-start", "6"]) == 2
    assert (
        main(["sample", str(latent_run / "model"), "--out", str(tmp_path / "m"), "--n-per-class", "1", "--steps", "1"])
        == 0
    )
    assert set(load_image_set(tmp_path / "m")["provider"]) == {"synthmed-latent"}
