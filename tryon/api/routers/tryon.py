"""POST /v1/tryon (queue a try-on), GET /v1/tryon/{id}, DELETE /v1/tryon/{id}.

A try-on takes one of the caller's projected faces (its stored latent, `faces.latent_sha256`) and a
model image: an outfit's (the caller's), a catalog item's (anyone's catalog) or a garment's on-model
image (the caller's, once its transfer job is done). The route checks everything it can at once —
404 for a face / outfit / garment that is not the caller's, 409 for a face not projected yet (or a
garment still processing), 422 for a flat (garment-only) outfit that shows no model, 400 for unknown
edit names or instruction words — then records a `tryons` row and queues the job (202).

The `tryon.render` job (`tryon.services.tryon.render_tryon_job`) makes the image; its result is
{"tryon_id", "path", "image": {"id", "url"}, "notes", "metrics"}.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.idempotency import replayed
from tryon.api.rows import finish_deletion, made_edit, projected_face
from tryon.api.schemas import JobPublic, TryOnCreate, TryOnPublic, image_public
from tryon.db import repositories as repo
from tryon.db.models import CatalogItem, Image, JobKind, TryOn
from tryon.fashion.outfits import require_on_model
from tryon.services.status import resource_status
from tryon.services.tryon import transfer_options

router = APIRouter(prefix="/v1", tags=["try-on"])


# ----------------------------------------------------------------------------------------------------
# Resolving what the request names.


def _resolve_model_image(session: Session, owner_id: str, body: TryOnCreate) -> tuple[Image, dict[str, Any]]:
    """The model image the request names and the source columns of the try-on row."""
    given = [name for name in ("outfit_id", "catalog_id", "garment_id", "product_id") if getattr(body, name)]
    if len(given) != 1:
        raise ApiError(400, "name exactly one of outfit_id, catalog_id, garment_id or product_id")
    if body.gender is not None and not body.product_id:
        raise ApiError(400, "gender chooses the model of a flat product: give it with product_id")
    image: Image | None
    if body.product_id:
        product = repo.get_product(session, product_id=body.product_id)  # Products are public.
        if product is None:
            raise not_found("product", body.product_id)
        image = session.get(Image, product.photo_image_id)
        if image is None:
            raise not_found("product photo", product.photo_image_id)
        # The face goes onto the real photo when it shows one; a flat shot, or an on-model one without
        # a face (legs only), is first worn by a generated model.
        has_face = product.view == "on_model" and int((product.prep or {}).get("faces") or 0) > 0
        path = "photo" if has_face else "garment_transfer"
        return image, {"product_id": product.id, "path": path, "product_gender": product.gender}
    if body.outfit_id:
        outfit = repo.get_outfit(session, outfit_id=body.outfit_id, owner_id=owner_id)
        if outfit is None:
            raise not_found("outfit", body.outfit_id)
        require_on_model(outfit.labels, "outfit")  # NotOnModelError -> 422, before anything is queued.
        image = session.get(Image, outfit.image_id)
        if image is None:
            raise not_found("outfit image", outfit.image_id)
        return image, {"outfit_id": outfit.id}
    if body.catalog_id:
        item = session.get(CatalogItem, body.catalog_id)  # The catalog is shared: anyone may try it on.
        if item is None:
            raise not_found("catalog item", body.catalog_id)
        require_on_model({"view": item.view} if item.view else item.labels, "catalog item")
        image = session.get(Image, item.image_id)
        if image is None:
            raise not_found("catalog item image", item.image_id)
        return image, {"catalog_id": item.id, "outfit_id": item.outfit_id}
    assert body.garment_id
    garment = repo.get_garment(session, garment_id=body.garment_id, owner_id=owner_id)
    if garment is None:
        raise not_found("garment", body.garment_id)
    if garment.on_model_image_id is None:
        raise ApiError(
            409, f"the garment {garment.id} is not on a model yet (status {garment.status}): wait for its job"
        )
    image = session.get(Image, garment.on_model_image_id)
    if image is None:
        raise not_found("garment image", garment.on_model_image_id)
    return image, {"garment_id": garment.id, "outfit_id": garment.outfit_id}


def _check_edits(strengths: dict[str, float], instruction: str | None) -> None:
    """Unknown edit names or instruction words -> 400 now rather than a failed job later."""
    for name, value in strengths.items():
        if not math.isfinite(value):
            raise ApiError(400, f"the strength of {name!r} must be a finite number")
    try:
        from tryon.face.instructions import EDIT_NAMES, parse_instruction
    except ImportError:  # The edits are not installed: the job reports it.
        return
    unknown = [n for n in strengths if n not in EDIT_NAMES]
    if unknown:
        raise ApiError(
            400, f"unknown edit name(s) {', '.join(map(repr, unknown))}; known: {', '.join(EDIT_NAMES)}"
        )
    if instruction is not None and instruction.strip():
        parse_instruction(instruction)  # InputError -> 400 with the known words.


def _tryon_public(session: Session, row: TryOn) -> TryOnPublic:
    job = repo.get_job(session, job_id=row.job_id) if row.job_id else None
    image = session.get(Image, row.image_id) if row.image_id else None
    result = (job.result or {}) if job is not None else {}
    edits = dict(row.edits or {})
    return TryOnPublic(
        id=row.id,
        status=resource_status(row, job),
        face_id=row.face_id,
        outfit_id=row.outfit_id,
        catalog_id=row.catalog_id,
        garment_id=row.garment_id,
        product_id=row.product_id,
        path=(job.payload or {}).get("path", "generated") if job is not None else "generated",
        edits=edits,
        image=image_public(image) if image is not None else None,
        notes=list(result.get("notes") or []),
        metrics=result.get("metrics"),
        error=job.error if job is not None else None,
        job=JobPublic.model_validate(job) if job is not None else None,
        created_at=row.created_at,
    )


# ----------------------------------------------------------------------------------------------------
# Routes.


@router.post(
    "/tryon",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TryOnPublic,
    responses={
        200: {"model": TryOnPublic, "description": "Same Idempotency-Key: the first request's try-on"},
        **error_docs(400, 401, 403, 404, 409, 422, 429, 503),
    },
)
def create_tryon(
    body: TryOnCreate,
    principal: ShopperDep,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TryOnPublic | JSONResponse:
    """Put one of your projected faces (with edits) onto an outfit, a catalog item or a garment.

    Answers 202 with the try-on and its `tryon.render` job; poll `GET /v1/tryon/{id}` or the job.
    """
    if JobKind.TRYON_RENDER not in runtime.registry:
        raise ApiError(503, "try-on is not available in this service")
    strengths = dict(body.edits.strengths) if body.edits else {}
    instruction = body.edits.instruction if body.edits else None
    request = body.model_dump(mode="json")
    earlier = replayed(session, owner_id=principal.owner_id, key=idempotency_key, kind=JobKind.TRYON_RENDER,
                       request=request, field="tryon_id", what="a try-on",
                       load=lambda i: repo.get_tryon(session, tryon_id=i, owner_id=principal.owner_id))
    if earlier is not None:
        return JSONResponse(_tryon_public(session, earlier).model_dump(mode="json"), status_code=200)
    session.rollback()
    runtime.queue.check_room(principal.owner_id)  # 429 before any work when enough jobs are running.

    face = projected_face(session, body.face_id, principal.owner_id)
    image, source = _resolve_model_image(session, principal.owner_id, body)
    transfer = None
    if source.get("path") == "garment_transfer":  # 503 without a fashion model, 400 for an unknown gender.
        transfer = transfer_options(runtime.fashion, gender=body.gender, product_gender=source.get("product_gender"))
    _check_edits(strengths, instruction)
    edit_id = body.edits.edit_id if body.edits else None
    if edit_id is not None:
        made_edit(session, edit_id, face)

    row = repo.create_tryon(
        session,
        owner_id=principal.owner_id,
        face_id=face.id,
        outfit_id=source.get("outfit_id"),
        garment_id=source.get("garment_id"),
        catalog_id=source.get("catalog_id"),
        product_id=source.get("product_id"),
        edits={"strengths": strengths, "instruction": instruction, **({"edit_id": edit_id} if edit_id else {})},
    )
    session.commit()
    path = source.get("path", "generated")
    payload: dict[str, Any] = {"tryon_id": row.id, "model_image_id": image.id, "generated": path != "photo",
                               "path": path}
    if transfer is not None:
        payload["transfer"] = transfer
    job, _ = runtime.queue.submit(
        owner_id=principal.owner_id,
        kind=JobKind.TRYON_RENDER,
        payload=payload,
        idempotency_key=idempotency_key,
        identity=request,
    )
    row.job_id = job.id
    session.add(row)
    session.commit()
    return _tryon_public(session, row)


@router.get("/tryon", response_model=list[TryOnPublic], responses=error_docs(401, 403))
def list_tryons(
    principal: ShopperDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[TryOnPublic]:
    """The caller's try-ons, newest first (at most `limit`)."""
    return [_tryon_public(session, row) for row in repo.list_owned(session, TryOn, owner_id=principal.owner_id,
                                                                   limit=limit)]


@router.get("/tryon/{tryon_id}", response_model=TryOnPublic, responses=error_docs(401, 403, 404))
def get_tryon(tryon_id: str, principal: ShopperDep, session: SessionDep) -> TryOnPublic:
    """One of the caller's try-ons: its status, and its image when done."""
    row = repo.get_tryon(session, tryon_id=tryon_id, owner_id=principal.owner_id)
    if row is None:
        raise not_found("try-on", tryon_id)
    return _tryon_public(session, row)


@router.delete("/tryon/{tryon_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404))
def delete_tryon(tryon_id: str, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep) -> None:
    """Delete one of the caller's try-ons and its image (a render still running stores nothing)."""
    dropped = repo.delete_tryon(session, tryon_id=tryon_id, owner_id=principal.owner_id)
    finish_deletion(session, blobs=runtime.blobs, dropped=dropped, what="try-on", row_id=tryon_id)
