"""Serving stored images: the media type a client gets, and the cacheable response (routes of
images, the catalog and products share them)."""

from __future__ import annotations

import io

from fastapi import Response
from PIL import Image as PILImage

from tryon.api.errors import ApiError
from tryon.api.runtime import Runtime
from tryon.db.models import Image
from tryon.services.storage import PNG, WEBP, encode_image

_FORMATS = {"png": PNG, "webp": WEBP}


def choose_media_type(fmt: str | None, accept: str | None) -> str:
    """?format= wins; else WebP when the client accepts it and prefers it to PNG; else PNG."""
    if fmt is not None:
        return _FORMATS[fmt]
    if not accept:
        return PNG
    prefs: dict[str, float] = {}
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        prefs[fields[0].lower()] = q
    webp = prefs.get(WEBP, 0.0)
    png = prefs.get(PNG, prefs.get("image/*", prefs.get("*/*", 0.0)))
    if webp > 0 and webp > png:
        return WEBP
    if webp > 0 and PNG not in prefs:
        return WEBP
    return PNG


def image_response(runtime: Runtime, image: Image, media_type: str, *, public: bool, gone: str) -> Response:
    """The stored image in `media_type` (re-encoded when it is stored in another), cacheable forever:
    blobs are content-addressed. `public`: shared caches may keep it (catalog images); else only
    the caller's browser. 410 with `gone` when the blob has been deleted."""
    try:
        data = runtime.blobs.get(image.blob_sha256)
    except FileNotFoundError:
        raise ApiError(410, f"{gone} (it was deleted)") from None
    if media_type != image.media_type:
        with PILImage.open(io.BytesIO(data)) as pil:
            pil.load()
            data = encode_image(pil, media_type)
    etag = f'"{image.blob_sha256[:32]}-{media_type.split("/")[1]}"'
    cache = "public" if public else "private"
    return Response(
        content=data,
        media_type=media_type,
        headers={"ETag": etag, "Cache-Control": f"{cache}, max-age=31536000, immutable", "Vary": "Accept"},
    )
