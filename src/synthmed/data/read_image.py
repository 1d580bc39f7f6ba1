"""Read one PNG/JPEG/TIFF/BMP file in any PIL mode into a square uint8 image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from synthmed.data.intensity import fit_square, is_grey, pil_to_array
from synthmed.data.records import ReadOptions, SourceImage
from synthmed.files import sha256_file


def read_image(path: str | Path, options: ReadOptions) -> list[SourceImage]:
    """The first frame of an image file; truncated or non-image files raise (PIL's own message)."""
    path = Path(path)
    with Image.open(path) as img:
        img.load()  # decode fully now: truncated files fail here, not later
        array = pil_to_array(img, scaling=options.scaling)
        fmt, mode, (width, height) = img.format or path.suffix.lstrip(".").upper(), img.mode, img.size
    return [SourceImage(
        pixels=fit_square(array, size_px=options.size_px, fit=options.fit),
        source_path=str(path), source_sha256=sha256_file(path),
        orig_format=fmt, orig_mode=mode, orig_size=f"{width}x{height}", grey=is_grey(array),
    )]
