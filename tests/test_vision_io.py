"""Safe image decoding: limits, EXIF orientation, colour modes, clear errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tryon.errors import InputError
from tryon.vision.io import (
    UPLOAD_FORMATS,
    ImageLimits,
    ImageTooLargeError,
    UnreadableImageError,
    UnsupportedImageError,
    list_images,
    load_image,
    to_rgb,
)

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "fashion" / "images" / "10057.jpg"


def png_header(width: int, height: int) -> bytes:
    """A PNG that is all header: it claims width x height RGB pixels and holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_loads_a_real_photo_from_path_bytes_and_file() -> None:
    a = load_image(PHOTO)
    assert a.mode == "RGB" and a.size == (224, 224)
    b = load_image(PHOTO.read_bytes())
    with PHOTO.open("rb") as f:
        c = load_image(f)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(a), np.asarray(c))


def test_exif_orientation_is_applied() -> None:
    upright = load_image(PHOTO)
    # Store the pixels rotated, with the EXIF tag that says how to turn them back (6 = rotate 90 CW).
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=98, exif=exif.tobytes())
    loaded = load_image(data)
    assert loaded.size == upright.size
    diff = np.abs(np.asarray(loaded, dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
    assert diff < 4.0, diff  # Only JPEG re-encoding noise; a wrong rotation differs by far more.


def test_a_preview_decodes_large_photos_reduced_and_upright() -> None:
    upright = load_image(PHOTO).resize((2240, 1680))
    exif = Image.Exif()
    exif[0x0112] = 6  # Stored turned; the preview must be upright like the full decode.
    jpeg = encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())
    full, preview = load_image(jpeg), load_image(jpeg, max_side=500)
    assert full.size == (2240, 1680) and preview.size == (560, 420)  # JPEG draft: decoded at 1/4 scale.
    small = np.asarray(full.resize(preview.size, Image.Resampling.BOX), dtype=np.int16)
    assert np.abs(np.asarray(preview, dtype=np.int16) - small).mean() < 6.0
    png = load_image(encode(upright, "PNG"), max_side=500)
    assert png.size == (560, 420)  # Other formats: reduced by an integer factor after decoding.
    assert load_image(PHOTO, max_side=500).size == (224, 224)  # Small photos are left alone.
    with pytest.raises(ImageTooLargeError):  # The pixel limit still applies to the header's size.
        load_image(jpeg, max_side=500, limits=ImageLimits(max_pixels=1_000_000))


def test_rgba_is_composited_on_the_background() -> None:
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))  # Fully transparent.
    out = load_image(encode(im, "PNG"), background=(0, 255, 0))
    assert out.getpixel((0, 0)) == (0, 255, 0)
    assert out.getpixel((1, 1)) == (255, 0, 0)


def test_greyscale_16bit_cmyk_and_palette_become_rgb() -> None:
    grey = load_image(encode(Image.new("L", (3, 3), 128), "PNG"))
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (128, 128, 128)
    deep = Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16))
    assert to_rgb(deep).getpixel((1, 1)) == (255, 255, 255)  # Scaled, not clipped from 65535 to 255 by luck.
    half = Image.fromarray(np.full((3, 3), 32896, dtype=np.uint16))
    assert to_rgb(half).getpixel((1, 1)) == (128, 128, 128)
    cmyk = load_image(encode(Image.new("CMYK", (3, 3), (0, 0, 0, 0)), "JPEG"))
    assert cmyk.mode == "RGB" and min(cmyk.getpixel((1, 1))) > 240  # CMYK white
    pal = Image.new("P", (2, 2), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.info["transparency"] = 1
    out = load_image(encode(pal, "PNG"), background=(1, 2, 3))
    assert out.getpixel((0, 0)) == (10, 20, 30) and out.getpixel((1, 1)) == (1, 2, 3)


def test_truncated_and_garbage_files_are_unreadable(tmp_path: Path) -> None:
    data = PHOTO.read_bytes()
    with pytest.raises(UnreadableImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2], name="half.jpg")
    with pytest.raises(UnreadableImageError, match="not an image"):
        load_image(b"this is not an image at all")
    with pytest.raises(UnreadableImageError, match="empty"):
        load_image(b"")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg")
    # All are InputErrors, which the CLI prints as one line and the API maps to 4xx.
    assert issubclass(UnreadableImageError, InputError)


def test_limits_are_checked_before_decoding() -> None:
    data = PHOTO.read_bytes()
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(data, limits=ImageLimits(max_bytes=len(data) - 1))
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(data, limits=ImageLimits(max_pixels=224 * 224 - 1))
    # A decompression bomb: a tiny file whose header claims a huge image. Refused from the header.
    for side in (7000, 100_000):  # Over our limit; over Pillow's own bomb limit too.
        with pytest.raises(ImageTooLargeError):
            load_image(png_header(side, side))
    with pytest.raises(UnreadableImageError, match="smaller than"):
        load_image(data, limits=ImageLimits(min_side=300))


def test_formats_can_be_restricted() -> None:
    tiff = encode(Image.new("RGB", (4, 4)), "TIFF")
    assert load_image(tiff).size == (4, 4)
    with pytest.raises(UnsupportedImageError, match="TIFF"):
        load_image(tiff, formats=UPLOAD_FORMATS)


def test_list_images_is_sorted_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for rel in ["b/2.JPG", "a.png", "b/1.jpeg", ".hidden/x.png", "notes.txt", "b/.x.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.png", "b/1.jpeg", "b/2.JPG"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.png"]
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "a.png")
