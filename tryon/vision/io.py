"""Safe image decoding: byte and pixel limits, EXIF orientation, any mode to RGB.

Every image that enters tryon from outside (dataset photos, uploads, CLI arguments) goes through
`load_image`, so the limits and the colour handling are the same everywhere:

- the byte size is checked before anything is decoded, the pixel count from the header before the
  pixels are (a decompression bomb never allocates);
- the EXIF orientation tag is applied (phones store portraits as rotated landscapes);
- palette, greyscale, 16-bit, CMYK and alpha images become 8-bit RGB; transparent pixels are
  composited onto a chosen background colour.

Errors are `tryon.errors.InputError` subclasses whose message names the file and says what is wrong;
the API maps them to 400 (`UnreadableImageError`), 413 (`ImageTooLargeError`) and 415
(`UnsupportedImageError`).

Coordinates in tryon: a pixel (row i, column j) covers [j, j+1) x [i, i+1); its centre is at
(j + 0.5, i + 0.5). Landmarks and transforms use these continuous (x, y) coordinates.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tryon.errors import InputError

RGB = tuple[int, int, int]

# Formats a user may upload to the service. Datasets accept anything Pillow decodes (formats=None).
UPLOAD_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})

# File name suffixes we treat as images when listing folders (lower case, with the dot).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
)


class UnreadableImageError(InputError):
    """The bytes are not an image Pillow can decode, or the file is truncated or corrupt."""


class UnsupportedImageError(InputError):
    """A valid image in a format that is not allowed here (e.g. a TIFF upload to the API)."""


class ImageTooLargeError(InputError):
    """The file has more bytes, or the image more pixels, than the limits allow."""


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What `load_image` accepts. The defaults suit uploads and catalog photos alike."""

    max_bytes: int = 30 * 2**20          # Largest encoded file, in bytes.
    max_pixels: int = 40_000_000         # Largest width * height (a 40 MP photo), checked on the header.
    min_side: int = 1                    # Smallest width or height, in pixels.

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1 or self.min_side < 1:
            raise ValueError(f"image limits must be positive, got {self}")


DEFAULT_LIMITS = ImageLimits()

ImageSource = str | os.PathLike[str] | bytes | IO[bytes]


def load_image(
    source: ImageSource,
    *,
    background: RGB = (255, 255, 255),
    limits: ImageLimits = DEFAULT_LIMITS,
    formats: frozenset[str] | None = None,
    name: str | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Decode an image file safely into an 8-bit RGB PIL image, upright.

    source:     a path, the encoded bytes, or a binary file object (read to the end).
    background: RGB colour that transparent pixels are composited onto.
    limits:     byte / pixel / size limits (see ImageLimits).
    formats:    allowed Pillow format names (e.g. UPLOAD_FORMATS); None = any format Pillow reads.
    name:       how to call the image in error messages (default: the path, or "image").
    max_side:   a preview: decode at about this many pixels a side or more, cheaply (JPEG: draft mode,
                decoding at 1/2, 1/4 or 1/8 scale; other formats: reduced after decoding). None = full.

    Returns a fully loaded RGB image (mode "RGB", size (W, H) after the EXIF rotation).

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageTooLargeError: more than limits.max_bytes bytes or limits.max_pixels pixels.
        UnsupportedImageError: a format outside `formats`.
        UnreadableImageError: not an image, truncated, corrupt, or smaller than limits.min_side.
    """
    data, label = _read_bytes(source, limits, name)
    # Pillow warns (and past 2x its limit raises) on huge images; our own check below comes first
    # and is stricter, so any remaining bomb warning is turned into an error rather than ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im: Image.Image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _classify_open_error(exc, label, limits) from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise UnreadableImageError(f"{label}: not a readable image ({_reason(exc)})") from exc
        fmt = getattr(im, "format", None)
        if formats is not None and fmt not in formats:
            allowed = ", ".join(sorted(formats))
            raise UnsupportedImageError(f"{label}: {fmt or 'unknown'} images are not accepted (use {allowed})")
        width, height = im.size
        if width * height > limits.max_pixels:
            raise ImageTooLargeError(
                f"{label}: {width}x{height} pixels is more than the limit of {limits.max_pixels:,} pixels"
            )
        try:
            if max_side is not None and fmt == "JPEG":
                im.draft("RGB", (max_side, max_side))  # Decodes at the smallest scale >= max_side.
            im.load()
            if max_side is not None and (factor := max(im.size) // max_side) > 1:
                im = im.reduce(factor)
            im = ImageOps.exif_transpose(im) or im
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, EOFError) as exc:
            raise UnreadableImageError(f"{label}: the image data is truncated or corrupt ({_reason(exc)})") from exc
    if min(im.size) < limits.min_side:
        raise UnreadableImageError(
            f"{label}: {im.size[0]}x{im.size[1]} pixels is smaller than {limits.min_side} pixels a side"
        )
    return to_rgb(im, background=background)


def to_rgb(im: Image.Image, *, background: RGB = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode -> 8-bit "RGB". Alpha (and palette transparency) is composited onto
    `background`; 16/32-bit greyscale is scaled to 8 bits rather than clipped; CMYK is converted."""
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        scale = 255.0 / 65535.0 if im.mode.startswith("I;16") or (im.mode == "I" and a.max() > 255) else 1.0
        if im.mode == "F" and a.size and a.max() <= 1.0:
            scale = 255.0
        im = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), mode="L")
    elif im.mode == "LA" or im.mode == "PA" or im.mode == "RGBa":
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        canvas = Image.new("RGBA", im.size, (*background, 255))
        canvas.alpha_composite(im)
        return canvas.convert("RGB")
    return im.convert("RGB")


def image_to_array(im: Image.Image) -> np.ndarray:
    """RGB PIL image -> contiguous uint8 array [H, W, 3] (what the mediapipe wrappers take)."""
    a = np.asarray(to_rgb(im), dtype=np.uint8)
    return np.ascontiguousarray(a)


def list_images(root: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files under `root` (by suffix, case-insensitive), sorted by their path relative to
    `root` so that every run sees them in the same order. Hidden files and folders are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in root.glob(pattern)
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


# ----------------------------------------------------------------------------------------------------


def _read_bytes(source: ImageSource, limits: ImageLimits, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "image"
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        label = name or str(path)
        size = path.stat().st_size  # FileNotFoundError names the path.
        if size > limits.max_bytes:
            raise ImageTooLargeError(f"{label}: {size:,} bytes is more than the limit of {limits.max_bytes:,} bytes")
        with path.open("rb") as f:
            data = f.read(limits.max_bytes + 1)
    else:
        label = name or getattr(source, "name", None) or "image"
        data = source.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"{label}: more than the limit of {limits.max_bytes:,} bytes")
    if not data:
        raise UnreadableImageError(f"{label}: the file is empty")
    return data, str(label)


def _classify_open_error(exc: Exception, label: str, limits: ImageLimits) -> InputError:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageTooLargeError(f"{label}: too many pixels (more than the limit of {limits.max_pixels:,} pixels)")
    return UnreadableImageError(f"{label}: not an image file (or a format Pillow cannot read)")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
