"""Read one PNG/JPEG/TIFF/BMP file in any PIL mode into a square uint8 image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from synthmed.data.intensity import fit_square, is_grey, pil_to_array, to_grey
from synthmed.data.records import ReadOptions, SourceImage
from synthmed.files import sha256_file


def read_image(path: str | Path, options: ReadOptions) -> list[SourceImage]:
    """The first frame of an image file; truncated or non-image files raise (PIL's own message).

    Large JPEGs are decoded at a reduced DCT scale (`Image.draft`) that still leaves at least twice
    the target size, and grey-content RGB is made single-channel before resizing (3x less work).
    """
    path = Path(path)
    with Image.open(path) as img:
        fmt, mode, (width, height) = img.format or path.suffix.lstrip(".").upper(), img.mode, img.size
        if fmt == "JPEG" and mode in ("L", "RGB"):
            img.draft(mode, (2 * options.size_px, 2 * options.size_px))
        img.load()  # decode fully now: truncated files fail here, not later
        array = pil_to_array(img, scaling=options.scaling)
    grey = is_grey(array)
    if grey:
        array = to_grey(array)
    return [
        SourceImage(
            pixels=fit_square(array, size_px=options.size_px, fit=options.fit),
            source_path=str(path),
            source_sha256=sha256_file(path),
            orig_format=fmt,
            orig_mode=mode,
            orig_size=f"{width}x{height}",
            grey=grey,
        )
    ]
