"""Storing what the service makes: images, latents and outfits, the same way for routes and jobs.

    picture --save_image--> images row + PNG blob (content-addressed)
    OutfitResult --save_outfit--> outfits row + image + W+ latent (npz blob) + how it was made

Every generated outfit goes through `save_outfit` (plain outfits, variants, a garment worn by a
model), so each keeps its latent: a catalog entry or a try-on made from it later can start from it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from tryon.db import repositories as repo
from tryon.db.blobs import LATENT_MEDIA_TYPE, BlobStore
from tryon.db.models import Image, ImageKind, Outfit
from tryon.fashion.outfits import OutfitResult

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


def latent_bytes(ws: np.ndarray, **meta: Any) -> bytes:
    """W+ latent float32 [num_ws, w_dim] (+ JSON-able metadata) -> npz bytes for the blob store."""
    buf = io.BytesIO()
    np.savez(buf, ws=np.asarray(ws, dtype=np.float32), meta=np.array(json.dumps(meta, sort_keys=True)))
    return buf.getvalue()


def load_latent(data: bytes) -> np.ndarray:
    """npz bytes of `latent_bytes` -> ws float32 [num_ws, w_dim] (no pickles are read)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return np.asarray(npz["ws"], dtype=np.float32)


def json_safe(value: Any) -> Any:
    """`value` as plain JSON (numpy scalars become numbers, anything else unknown its str)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def save_outfit(
    session: Session,
    *,
    blobs: BlobStore,
    owner_id: str,
    result: OutfitResult,
    checkpoint_id: str,
    kind: str = ImageKind.OUTFIT,
) -> tuple[Outfit, Image]:
    """Store a generated outfit (its image, W+ latent and params) as an outfit of `owner_id`.
    Returns (outfit, image). An outfit of no one seed (a mix) records its base's seed."""
    stored = save_image(session, blobs=blobs, owner_id=owner_id, image=result.image, kind=kind)
    latent = repo.store_blob(
        session, blobs=blobs, data=latent_bytes(result.ws, params=result.params), media_type=LATENT_MEDIA_TYPE
    )
    base_seed = result.seed if result.seed is not None else int(result.params.get("base", {}).get("seed", 0))
    outfit = repo.create_outfit(
        session,
        owner_id=owner_id,
        labels=result.labels,
        seed=base_seed,
        truncation=result.truncation,
        checkpoint=checkpoint_id,
        image_id=stored.id,
    )
    outfit.latent_sha256 = latent.sha256
    outfit.params = json_safe(result.params) or None  # A plain outfit has none.
    session.flush()
    return outfit, stored
