"""POST /v1/variants (designer scope): garment variants, each stored as one of the caller's outfits.

Modes: seeds, truncation (sweep), mix (style mixing with `other` by layer group: coarse =
silhouette, middle, fine = colour / texture), interpolate (a path in W to `other`), colour (the
same seed under other colour labels). Every variant is an outfit of the caller (with its latent and
`params`), so `POST /v1/catalog {"outfit_id"}` saves the chosen one and try-on takes it.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool

from tryon.api.deps import DesignerDep, RuntimeDep
from tryon.api.errors import error_docs
from tryon.api.runtime import Runtime
from tryon.api.schemas import OutfitCreate, VariantPublic, VariantsCreate, VariantsPublic, image_public
from tryon.db.models import ImageKind
from tryon.fashion.outfits import FashionPipeline, OutfitSpec
from tryon.fashion.variants import garment_variants
from tryon.services.storage import save_outfit

router = APIRouter(prefix="/v1", tags=["variants"])


def _spec(pipeline: FashionPipeline, body: OutfitCreate) -> OutfitSpec:
    return pipeline.spec(
        category=body.category,
        colour=body.colour,
        gender=body.gender,
        view=body.view,
        labels=body.labels,
        seed=body.seed,
        truncation=body.truncation,
    )


@router.post(
    "/variants",
    status_code=status.HTTP_201_CREATED,
    response_model=VariantsPublic,
    responses=error_docs(400, 401, 403, 429, 503),
)
async def create_variants(body: VariantsCreate, principal: DesignerDep, runtime: RuntimeDep) -> VariantsPublic:
    """Generate variants of a garment; each is saved as one of your outfits."""
    return await run_in_threadpool(_variants, runtime, principal.owner_id, body)


def _variants(runtime: Runtime, owner_id: str, body: VariantsCreate) -> VariantsPublic:
    pipeline = runtime.fashion.pipeline()
    base = _spec(pipeline, body.base)
    other = _spec(pipeline, body.other) if body.other is not None else None
    results = garment_variants(
        pipeline,
        base,
        body.mode,
        seeds=body.seeds,
        truncations=body.truncations,
        other=other,
        layers=body.layers,
        steps=body.steps,
        colours=body.colours,
    )
    out = []
    with runtime.database.sessions.begin() as session:
        for result in results:
            outfit, image = save_outfit(
                session,
                blobs=runtime.blobs,
                owner_id=owner_id,
                result=result,
                checkpoint_id=pipeline.checkpoint_id,
                kind=ImageKind.VARIANT,
            )
            out.append(VariantPublic(outfit_id=outfit.id, image=image_public(image), params=outfit.params or {}))
    return VariantsPublic(variants=out)
