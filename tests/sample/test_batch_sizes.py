"""Batch sizes per device: None resolves to the device's defaults (CPU: today's values), a given value wins,
and `sample_images` records the values it used in every manifest row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import corpus
from synthmed.data.manifest import load_image_set
from synthmed.sample.batch_sizes import DEVICE_BATCH_SIZES, default_batch_sizes
from synthmed.sample.generate import SampleConfig, sample_images

BASE = {"model_dir": "-", "out_dir": "-", "n_per_class": 2}


def test_cpu_keeps_the_values_every_cpu_set_so_far_was_made_with() -> None:
    assert default_batch_sizes("cpu") == (32, 16)
    assert SampleConfig(**BASE).for_device("cpu").model_dump(include={"batch_size", "model_batch_size"}) == {
        "batch_size": 32,
        "model_batch_size": 16,
    }


def test_cuda_calls_the_unet_on_more_rows_with_no_padded_rows() -> None:
    batch, rows = default_batch_sizes("cuda")
    assert rows > default_batch_sizes("cpu")[1]
    for images_per_row in (1, 2):  # unguided: one row per image; guided: a conditional and a null row
        assert (batch * images_per_row) % rows == 0  # whole UNet calls: no padded rows
    assert SampleConfig(**BASE).for_device("cuda").model_batch_size == rows


def test_other_device_types_use_the_cpu_values_and_batches_grow_with_processes() -> None:
    assert default_batch_sizes("mps") == default_batch_sizes("cpu") == DEVICE_BATCH_SIZES["cpu"]
    batch, rows = default_batch_sizes("cuda")
    assert default_batch_sizes("cuda", processes=4) == (4 * batch, rows)  # each GPU gets its default share
    with pytest.raises(ValueError, match="processes must be >= 1"):
        default_batch_sizes("cuda", processes=0)


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_a_given_value_wins(device_type: str) -> None:
    given = SampleConfig(**BASE, batch_size=5, model_batch_size=3).for_device(device_type, processes=2)
    assert (given.batch_size, given.model_batch_size) == (5, 3)
    half = SampleConfig(**BASE, model_batch_size=3).for_device(device_type)
    assert (half.batch_size, half.model_batch_size) == (default_batch_sizes(device_type)[0], 3)
    assert SampleConfig(**BASE).batch_size is None  # resolved at run time, not at validation


@pytest.mark.parametrize("field", ["batch_size", "model_batch_size"])
def test_zero_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SampleConfig(**BASE, **{field: 0})


def _pixels(folder: Path) -> list[np.ndarray]:
    frame = load_image_set(folder)
    return [np.asarray(Image.open(folder / path)) for path in frame["path"]]


def test_the_manifest_records_the_resolved_values_and_the_images_ignore_batch_size(tmp_path: Path) -> None:
    model = corpus.tiny_model(tmp_path / "model")
    common = dict(model_dir=str(model), n_per_class=3, steps=2, guidance_scale=2.0, device="cpu", grid_per_class=0)
    default = sample_images(SampleConfig(**common, out_dir=str(tmp_path / "default")))
    rows = load_image_set(default)
    assert set(rows["batch_size"]) == {32} and set(rows["model_batch_size"]) == {16}
    assert set(rows["device"]) == {"cpu"} and set(rows["mixed_precision"]) == {"no"}

    # A fixed model_batch_size of 4: a 3-image batch is 6 guided rows (2 calls, the second padded), a 1-image
    # batch 2 rows padded to 4. Either way image k is the same.
    ones = sample_images(SampleConfig(**common, out_dir=str(tmp_path / "ones"), batch_size=1, model_batch_size=4))
    threes = sample_images(SampleConfig(**common, out_dir=str(tmp_path / "threes"), batch_size=3, model_batch_size=4))
    assert set(load_image_set(ones)["batch_size"]) == {1} and set(load_image_set(threes)["batch_size"]) == {3}
    assert set(load_image_set(threes)["model_batch_size"]) == {4}
    for a, b in zip(_pixels(ones), _pixels(threes), strict=True):
        np.testing.assert_array_equal(a, b)


def test_out_of_memory_says_to_lower_model_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import synthmed.sample.generate as generate

    def out_of_memory(*args: object, **kwargs: object) -> Path:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(generate, "write_image_set", out_of_memory)  # a GPU's allocator failure, on the CPU
    model = corpus.tiny_model(tmp_path / "model")
    config = SampleConfig(model_dir=str(model), out_dir=str(tmp_path / "set"), n_per_class=1, device="cpu")
    with pytest.raises(torch.OutOfMemoryError, match=r"16 rows per UNet call.*--model-batch-size.*e\.g\. 8"):
        sample_images(config)
