"""GET /v1/labels, POST /v1/outfits, GET /v1/outfits/{id}: outfits from the fashion generator.

`POST /v1/outfits` answers with the outfit (201) after one batched forward pass; with the header
`Prefer: respond-async` it queues an `outfit.generate` job instead (202, poll `GET /v1/jobs/{id}`),
and `Idempotency-Key` makes a retried request return the first job.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import error_docs, not_found
from tryon.api.runtime import Runtime
from tryon.api.schemas import JobPublic, LabelsPublic, OutfitCreate, OutfitPublic, image_public
from tryon.db import repositories as repo
from tryon.db.models import Image, JobKind, Outfit
from tryon.services.fashion import OutfitSpec
from tryon.services.storage import save_outfit

router = APIRouter(prefix="/v1", tags=["outfits"])


def _outfit_public(outfit: Outfit, image: Image) -> OutfitPublic:
    return OutfitPublic(
        id=outfit.id,
        labels=dict(outfit.labels),
        seed=outfit.seed,
        truncation=outfit.truncation,
        checkpoint_id=outfit.checkpoint,
        image=image_public(image),
        created_at=outfit.created_at,
    )


@router.get("/labels", response_model=LabelsPublic, responses=error_docs(503))
async def get_labels(runtime: RuntimeDep) -> LabelsPublic:
    """The fashion model's labels and their values (what POST /v1/outfits accepts)."""
    labels = await run_in_threadpool(runtime.fashion.labels)
    return LabelsPublic.model_validate(labels)


@router.post(
    "/outfits",
    status_code=status.HTTP_201_CREATED,
    response_model=OutfitPublic,
    responses={
        202: {"model": JobPublic, "description": "With `Prefer: respond-async`: the queued job"},
        **error_docs(400, 401, 403, 409, 429, 503),
    },
)
async def create_outfit(
    body: OutfitCreate,
    principal: ShopperDep,
    runtime: RuntimeDep,
    prefer: Annotated[str | None, Header(description="`respond-async` to get a job instead of waiting")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> OutfitPublic | Response:
    """Generate an outfit image by labels, seed and truncation."""
    fashion = runtime.fashion
    spec = await run_in_threadpool(
        fashion.resolve,
        fields={"category": body.category, "colour": body.colour, "gender": body.gender, "view": body.view},
        labels=body.labels,
        seed=body.seed,
        truncation=body.truncation,
    )
    if prefer and "respond-async" in prefer.lower():
        job, _ = await run_in_threadpool(
            lambda: runtime.queue.submit(
                owner_id=principal.owner_id,
                kind=JobKind.OUTFIT_GENERATE,
                payload={"labels": spec.labels, "seed": spec.seed, "truncation": spec.truncation},
                idempotency_key=idempotency_key,
            )
        )
        return JSONResponse(JobPublic.model_validate(job).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    image = await fashion.generate(spec)
    return await run_in_threadpool(_store, runtime, principal.owner_id, spec, image)


def _store(runtime: Runtime, owner_id: str, spec: OutfitSpec, image: np.ndarray) -> OutfitPublic:
    fashion = runtime.fashion
    result = fashion.outfit_result(spec, image)
    with runtime.database.sessions.begin() as session:
        outfit, stored = save_outfit(
            session, blobs=runtime.blobs, owner_id=owner_id, result=result, checkpoint_id=fashion.checkpoint_id()
        )
        return _outfit_public(outfit, stored)


@router.get("/outfits", response_model=list[OutfitPublic], responses=error_docs(401, 403))
def list_outfits(
    principal: ShopperDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[OutfitPublic]:
    """The caller's outfits (generated, variants, transfers), newest first (at most `limit`)."""
    outfits = repo.list_owned(session, Outfit, owner_id=principal.owner_id, limit=limit)
    images = {o.image_id: repo.get_image(session, image_id=o.image_id, owner_id=principal.owner_id) for o in outfits}
    return [_outfit_public(o, image) for o in outfits if (image := images[o.image_id]) is not None]


@router.get("/outfits/{outfit_id}", response_model=OutfitPublic, responses=error_docs(401, 403, 404))
def get_outfit(outfit_id: str, principal: ShopperDep, session: SessionDep) -> OutfitPublic:
    """One of the caller's outfits."""
    outfit = repo.get_outfit(session, outfit_id=outfit_id, owner_id=principal.owner_id)
    if outfit is None:
        raise not_found("outfit", outfit_id)
    image = repo.get_image(session, image_id=outfit.image_id, owner_id=principal.owner_id)
    if image is None:
        raise not_found("outfit image", outfit.image_id)
    return _outfit_public(outfit, image)
