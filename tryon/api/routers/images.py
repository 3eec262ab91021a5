"""GET /v1/images/{id}: a stored image of the caller, as PNG or WebP."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from tryon.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tryon.api.errors import error_docs, not_found
from tryon.api.media import choose_media_type, image_response
from tryon.db import repositories as repo
from tryon.services.storage import PNG, WEBP

router = APIRouter(prefix="/v1", tags=["images"])


@router.get(
    "/images/{image_id}",
    response_class=Response,
    responses={
        200: {"content": {PNG: {}, WEBP: {}}, "description": "The image"},
        **error_docs(401, 404),
    },
)
def get_image(
    image_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    format: Annotated[Literal["png", "webp"] | None, Query(description="png or webp (default: by Accept)")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """One of the caller's images. PNG by default; WebP with `?format=webp` or `Accept: image/webp`."""
    image = repo.get_image(session, image_id=image_id, owner_id=principal.owner_id)
    if image is None:
        raise not_found("image", image_id)
    return image_response(
        runtime, image, choose_media_type(format, accept), public=False, gone=f"the data of image {image_id!r} is gone"
    )
