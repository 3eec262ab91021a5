"""Reading an uploaded photo: the size, the file signature against the allow-list (JPEG, PNG, WebP),
the pixel count, then a safe decode (routes of faces, garments and products share it). Each refusal
has its own status: 413 too large, 400 empty or corrupt, 415 not an allowed type."""

from __future__ import annotations

from typing import Any

from fastapi import UploadFile

from tryon.api.errors import ApiError
from tryon.api.runtime import Runtime

# Leading bytes of the formats we accept, and of common ones we do not (for a precise message).
_ALLOWED_SIGNATURES = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}
_OTHER_SIGNATURES = {
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "PDF": (b"%PDF",),
}


def sniff_image_format(data: bytes) -> str | None:
    """ "JPEG", "PNG" or "WEBP" from the file's first bytes; None for anything else."""
    for name, prefixes in _ALLOWED_SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _describe_unsupported(data: bytes) -> str:
    for name, prefixes in _OTHER_SIGNATURES.items():
        if data.startswith(prefixes):
            return f"a {name} file"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "a HEIC/AVIF photo"
    try:
        data[:4096].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "not an image we can read"


# The schema says an upload is not empty (read_upload answers an empty one with 400).
NON_EMPTY_FILE: dict[str, Any] = {"minLength": 1}


def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes, refusing more than `max_bytes` (413) and empty files (400)."""
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, f"the file is too large: at most {max_bytes:,} bytes")
    if not data:
        raise ApiError(400, "the file is empty: send a JPEG, PNG or WebP photo")
    return data


def decode_upload(data: bytes, *, name: str, runtime: Runtime, max_side: int | None = None) -> Any:
    """Allow-listed, size-checked, decoded, EXIF-upright RGB PIL image (errors map to 400/413/415).
    max_side: a cheap preview of about that size (see `load_image`)."""
    from tryon.vision.io import UPLOAD_FORMATS, ImageLimits, load_image

    if sniff_image_format(data) is None:
        raise ApiError(415, f"{name} is {_describe_unsupported(data)}, not an allowed image: send a JPEG, PNG or WebP")
    settings = runtime.settings
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)
    return load_image(data, limits=limits, formats=UPLOAD_FORMATS, name=name, max_side=max_side)
