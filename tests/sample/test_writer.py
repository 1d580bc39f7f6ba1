"""SyntheticSetWriter: files, bit depths, manifest contract and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthmed.data.manifest import SYNTHETIC_COLUMNS, load_image_set
from synthmed.sample.writer import SyntheticSetWriter, convert_bit_depth


def test_png8_and_manifest_columns(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    with SyntheticSetWriter(tmp_path / "set") as writer:
        row = writer.add(
            grey,
            label="normal",
            label_idx=0,
            seed=7,
            provenance={"sampler": "dpmpp", "steps": 20, "checkpoint_sha256": "abc"},
        )
        writer.add(grey[::-1], label="pneumonia", label_idx=1, seed=7, provenance={"sampler": "dpmpp"})
    frame = pd.read_csv(tmp_path / "set" / "manifest.csv")
    assert list(frame.columns[: len(SYNTHETIC_COLUMNS)]) == list(SYNTHETIC_COLUMNS)
    assert "checkpoint_sha256" in frame.columns[len(SYNTHETIC_COLUMNS) :]
    assert frame["synthetic"].tolist() == [1, 1] and frame["seed"].tolist() == [7, 7]
    assert row["created_utc"] and row["image_id"] == "normal_000007"
    back = np.asarray(Image.open(tmp_path / "set" / row["path"]))
    np.testing.assert_array_equal(back, grey)
    assert len(load_image_set(tmp_path / "set")) == 2  # readable by the stage contract


def test_png16_round_trip_and_scaling(tmp_path):
    grey16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    writer = SyntheticSetWriter(tmp_path, bit_depth=16)
    row = writer.add(grey16, label="a", label_idx=0, seed=0)
    writer.close()
    back = np.asarray(Image.open(tmp_path / row["path"]))
    np.testing.assert_array_equal(back.astype(np.uint16), grey16)
    assert convert_bit_depth(np.array([255], np.uint8), 16)[0] == 65535
    assert convert_bit_depth(np.array([65535], np.uint16), 8)[0] == 255


def test_rgb_png(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    writer = SyntheticSetWriter(tmp_path)
    row = writer.add(rgb, label="x", label_idx=0, seed=1)
    writer.close()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / row["path"])), rgb)


def test_bad_input_is_refused(tmp_path):
    writer = SyntheticSetWriter(tmp_path / "s")
    writer.add(np.zeros((4, 4), np.uint8), label="a", label_idx=0, seed=1)
    with pytest.raises(ValueError, match="already written"):
        writer.add(np.zeros((4, 4), np.uint8), label="a", label_idx=0, seed=1)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        writer.add(np.zeros((2, 4, 4), np.uint8), label="a", label_idx=0, seed=2)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        writer.add(np.zeros((4, 4), np.float32), label="a", label_idx=0, seed=3)
    writer.close()
    with pytest.raises(FileExistsError, match="already exists"):
        SyntheticSetWriter(tmp_path / "s")
    with pytest.raises(ValueError, match="grey images only"):
        SyntheticSetWriter(tmp_path / "t", bit_depth=16).add(
            np.zeros((4, 4, 3), np.uint8), label="a", label_idx=0, seed=0
        )
    with pytest.raises(ValueError, match="formats"):
        SyntheticSetWriter(tmp_path / "u", formats=("jpeg",))
