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


def test_the_manifest_row_order_does_not_change_the_arrays(tmp_path):
    """Rows listed in another order give the same images, labels and ids (downstream results depend on them)."""
    import pandas as pd

    from synthmed.data.arrays import load_image_arrays as load

    rng = np.random.default_rng(0)
    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    rows = []
    for k in range(8):
        name = f"images/img_{k:02d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / name)
        rows.append({"image_id": f"img_{k:02d}", "path": name, "label": ["a", "b"][k % 2]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    first = load(folder, size_px=8, channels=1)
    pd.DataFrame(rows[::-1]).to_csv(folder / "manifest.csv", index=False)
    second = load(folder, size_px=8, channels=1)
    np.testing.assert_array_equal(first.pixels, second.pixels)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.ids == second.ids
