"""Image sets read into arrays: 16-bit grey files keep their picture instead of clipping to white."""

from __future__ import annotations

import numpy as np
from PIL import Image

from synthmed.data.arrays import read_image


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    eight = np.random.default_rng(0).integers(0, 256, (12, 12), dtype=np.uint16)
    Image.fromarray((eight * 257).astype(np.uint16)).save(tmp_path / "wide.png")  # as `synthmed sample` writes 16-bit
    Image.fromarray(eight.astype(np.uint8)).save(tmp_path / "narrow.png")
    wide, narrow = read_image(tmp_path / "wide.png", mode="L"), read_image(tmp_path / "narrow.png", mode="L")
    assert wide.dtype == np.uint8 and wide.shape == (1, 12, 12)
    np.testing.assert_array_equal(wide, narrow)
