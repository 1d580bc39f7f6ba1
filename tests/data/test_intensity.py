"""Pixel conversions: windows, scaling without 8-bit clipping, PIL modes, grey detection, square fit."""

import numpy as np
import pytest
from PIL import Image

from synthmed.data.intensity import (
    WINDOWS,
    apply_window,
    fit_square,
    is_grey,
    parse_window,
    pil_to_array,
    scale_to_uint8,
)


def test_named_and_custom_windows():
    assert parse_window("lung") == WINDOWS["lung"] == (1500.0, -600.0)
    assert parse_window("400,40") == (400.0, 40.0)
    assert parse_window(None) is None
    with pytest.raises(ValueError, match="WIDTH,LEVEL"):
        parse_window("wide")
    with pytest.raises(ValueError, match="positive"):
        parse_window("-5,10")


def test_lung_window_maps_air_dark_and_bone_white():
    hu = np.array([-1400.0, -600.0, 150.0, 1000.0])
    out = apply_window(hu, WINDOWS["lung"])
    assert out[0] == 0 and out[-1] == 255 and 120 <= out[1] <= 135 and out[2] == 255


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit ramp in 16 bits
    Image.fromarray(ramp).save(tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as img:
        assert img.mode.startswith("I")
        out = pil_to_array(img)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 200  # contrast kept, not saturated at 255


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I", "F", "CMYK"])
def test_every_pil_mode_becomes_uint8(mode):
    base = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1)))
    img = base.convert(mode)
    out = pil_to_array(img)
    assert out.dtype == np.uint8 and out.shape[:2] == (16, 64) and out.ndim in (2, 3)
    assert out.max() > out.min()


def test_transparent_pixels_become_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255
    out = pil_to_array(Image.fromarray(rgba, "RGBA"))
    assert (out[:2] == 200).all() and (out[2:] == 0).all()


def test_grey_detection_tolerates_jpeg_noise_but_not_colour():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 255, (32, 32, 1), dtype=np.uint8), 3, axis=-1)
    noisy = np.clip(grey.astype(int) + rng.integers(-2, 3, grey.shape), 0, 255).astype(np.uint8)
    colour = grey.copy()
    colour[..., 0] = 255 - colour[..., 0]
    assert is_grey(grey) and is_grey(noisy) and not is_grey(colour)


def test_fit_square_pad_keeps_everything_crop_centres():
    wide = np.full((10, 30), 200, np.uint8)
    padded = fit_square(wide, size_px=30, fit="pad")
    assert padded.shape == (30, 30) and padded[0].max() == 0 and padded[15].min() == 200
    cropped = fit_square(wide, size_px=10, fit="crop")
    assert cropped.shape == (10, 10) and cropped.min() == 200
    assert fit_square(np.zeros((50, 40, 3), np.uint8), size_px=16).shape == (16, 16, 3)


def test_scale_to_uint8_handles_flat_and_nan():
    assert scale_to_uint8(np.full((3, 3), 7.0)).max() == 0
    out = scale_to_uint8(np.array([[0.0, np.nan], [1.0, 2.0]]))
    assert out[1, 1] == 255 and out[0, 0] == 0
