"""Storing results: encode images and write their rows, the same way for routes and jobs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from tryon.api.errors import not_found
from tryon.api.fashion import OutfitSpec
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.models import Image, ImageKind, Outfit

PNG = "image/png"
WEBP = "image/webp"


def encode_image(image: PILImage.Image | np.ndarray, media_type: str = PNG) -> bytes:
    """PIL image or uint8 [H, W, C] -> PNG (lossless, default) or WebP (lossless) bytes, no metadata."""
    pil = PILImage.fromarray(image) if isinstance(image, np.ndarray) else image
    if pil.mode not in ("RGB", "RGBA", "L"):
        pil = pil.convert("RGB")
    buf = io.BytesIO()
    if media_type == PNG:
        pil.save(buf, format="PNG", optimize=False, compress_level=6)
    elif media_type == WEBP:
        pil.save(buf, format="WEBP", lossless=True, quality=80, method=4)
    else:
        raise ValueError(f"cannot encode {media_type}")
    return buf.getvalue()


def save_image(
    session: Session,
    *,
    blobs: BlobStore,
    owner_id: str,
    image: PILImage.Image | np.ndarray,
    kind: str,
    face_id: str | None = None,
) -> Image:
    """Store a picture as PNG and record it (`face_id`: the face it derives from)."""
    pil = PILImage.fromarray(image) if isinstance(image, np.ndarray) else image
    return repo.create_image(
        session,
        blobs=blobs,
        owner_id=owner_id,
        data=encode_image(pil, PNG),
        media_type=PNG,
        width=pil.size[0],
        height=pil.size[1],
        kind=kind,
        face_id=face_id,
    )


def save_outfit(
    session: Session, *, blobs: BlobStore, owner_id: str, spec: OutfitSpec, image: np.ndarray, checkpoint_id: str
) -> tuple[Outfit, Image]:
    stored = save_image(session, blobs=blobs, owner_id=owner_id, image=image, kind=ImageKind.OUTFIT)
    outfit = repo.create_outfit(
        session,
        owner_id=owner_id,
        labels=spec.labels,
        seed=spec.seed,
        truncation=spec.truncation,
        checkpoint=checkpoint_id,
        image_id=stored.id,
    )
    return outfit, stored


def finish_deletion(session: Session, *, blobs: BlobStore, dropped: list[str] | None, what: str, row_id: str) -> None:
    """After a repository delete: 404 when there was no such row (`dropped` is None), else commit and
    remove the files of the blobs nobody refers to any more."""
    if dropped is None:
        raise not_found(what, row_id)
    session.commit()
    repo.purge_blob_files(session, blobs=blobs, shas=dropped)
