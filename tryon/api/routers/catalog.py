"""GET /v1/catalog (filters, paging), GET /v1/catalog/{id} (+ /image), POST /v1/catalog (designers).

The catalog is shared: every caller lists it and reads its images (at `/v1/catalog/{id}/image`,
which `image.url` gives). The shipped catalog (a few generated garments per category x gender x
view, colours spread over them) is generated on the first request that needs it and stored; one
process generates it while concurrent first requests wait (`tryon.services.fashion.ensure_catalog`).
Designers add items from their own outfits (e.g. variants) or images.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from tryon.api.deps import DesignerDep, PrincipalDep, RuntimeDep, SessionDep
from tryon.api.errors import error_docs, not_found
from tryon.api.media import choose_media_type, image_response
from tryon.api.runtime import Runtime
from tryon.api.schemas import CatalogCreate, CatalogItemPublic, CatalogPage, image_public
from tryon.db import repositories as repo
from tryon.db.models import CatalogItem, CatalogSource, Image
from tryon.errors import InputError, ModelUnavailableError
from tryon.fashion.outfits import FIELD_ALIASES
from tryon.services.fashion import ensure_catalog
from tryon.services.storage import PNG, WEBP

router = APIRouter(prefix="/v1", tags=["catalog"])

MAX_PER_PAGE = 100


def item_public(item: CatalogItem, image: Image) -> CatalogItemPublic:
    return CatalogItemPublic(
        id=item.id,
        name=item.name,
        labels=dict(item.labels),
        category=item.category,
        colour=item.colour,
        gender=item.gender,
        view=item.view,
        seed=item.seed,
        truncation=item.truncation,
        source=item.source,
        params=item.params,
        image=image_public(image, url=f"/v1/catalog/{item.id}/image"),
        outfit_id=item.outfit_id,
        created_at=item.created_at,
    )


def _ensure(runtime: Runtime) -> None:
    """Generate the catalog if it is not there. Without a model, what is stored is still listed."""
    try:
        ensure_catalog(runtime.fashion, runtime.database, runtime.blobs)
    except ModelUnavailableError:
        with runtime.database.sessions() as session:
            if repo.list_catalog_items(session, limit=1)[1] == 0:
                raise


@router.get("/catalog", response_model=CatalogPage, responses=error_docs(400, 401, 429, 503))
async def list_catalog(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    category: Annotated[str | None, Query(max_length=100)] = None,
    colour: Annotated[str | None, Query(max_length=100)] = None,
    gender: Annotated[str | None, Query(max_length=100)] = None,
    view: Annotated[str | None, Query(max_length=100)] = None,
    source: Annotated[Literal["generated", "designer"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 24,
) -> CatalogPage:
    """Catalog items, filtered by category / colour / gender / view (case-insensitive), paged, with
    `counts`: how many items each value of each filter holds given the others. The first request
    generates the shipped catalog (seconds)."""
    await run_in_threadpool(_ensure, runtime)

    def read() -> CatalogPage:
        with runtime.database.sessions() as session:
            rows, total = repo.list_catalog_items(
                session,
                category=category,
                colour=colour,
                gender=gender,
                view=view,
                source=source,
                offset=(page - 1) * per_page,
                limit=per_page,
            )
            items = [item_public(row, _item_image(session, row)) for row in rows]
            counts = repo.catalog_facets(
                session, source=source, category=category, colour=colour, gender=gender, view=view
            )
        return CatalogPage(items=items, page=page, per_page=per_page, total=total, counts=counts)

    return await run_in_threadpool(read)


def _item_image(session: Session, item: CatalogItem) -> Image:
    image = repo.get_image_any_owner(session, image_id=item.image_id)
    if image is None:  # The FK cascades: only a concurrent delete gets here.
        raise not_found("catalog item", item.id)
    return image


@router.get("/catalog/{item_id}", response_model=CatalogItemPublic, responses=error_docs(401, 404))
def get_catalog_item(item_id: str, principal: PrincipalDep, session: SessionDep) -> CatalogItemPublic:
    """One catalog item."""
    item = repo.get_catalog_item(session, item_id=item_id)
    if item is None:
        raise not_found("catalog item", item_id)
    return item_public(item, _item_image(session, item))


@router.get(
    "/catalog/{item_id}/image",
    response_class=Response,
    responses={200: {"content": {PNG: {}, WEBP: {}}, "description": "The image"}, **error_docs(401, 404)},
)
def get_catalog_image(
    item_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    format: Annotated[Literal["png", "webp"] | None, Query(description="png or webp (default: by Accept)")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """A catalog item's image (every caller may read it). PNG by default, WebP on request."""
    item = repo.get_catalog_item(session, item_id=item_id)
    if item is None:
        raise not_found("catalog item", item_id)
    image = _item_image(session, item)
    gone = f"the image of catalog item {item_id!r} is gone"
    return image_response(runtime, image, choose_media_type(format, accept), public=True, gone=gone)


@router.post(
    "/catalog",
    status_code=status.HTTP_201_CREATED,
    response_model=CatalogItemPublic,
    responses=error_docs(400, 401, 403, 404, 429, 503),
)
async def save_to_catalog(body: CatalogCreate, principal: DesignerDep, runtime: RuntimeDep) -> CatalogItemPublic:
    """Save one of your outfits (a variant, a transfer) or one of your images to the catalog."""
    if (body.outfit_id is None) == (body.image_id is None):
        raise InputError("give exactly one of outfit_id or image_id")
    await run_in_threadpool(_ensure, runtime)  # Designer items list after the generated ones.
    return await run_in_threadpool(_save, runtime, principal.owner_id, body)


def _save(runtime: Runtime, owner_id: str, body: CatalogCreate) -> CatalogItemPublic:
    pipeline = runtime.fashion.pipeline()
    with runtime.database.sessions.begin() as session:
        seed = truncation = None
        latent = params = None
        labels: dict[str, str] = {}
        if body.outfit_id is not None:
            outfit = repo.get_outfit(session, outfit_id=body.outfit_id, owner_id=owner_id)
            if outfit is None:
                raise not_found("outfit", body.outfit_id)
            image = repo.get_image(session, image_id=outfit.image_id, owner_id=owner_id)
            if image is None:
                raise not_found("outfit image", outfit.image_id)
            labels = dict(outfit.labels)
            seed, truncation, latent, params = outfit.seed, outfit.truncation, outfit.latent_sha256, outfit.params
        else:
            assert body.image_id is not None
            image = repo.get_image(session, image_id=body.image_id, owner_id=owner_id)
            if image is None:
                raise not_found("image", body.image_id)
        if body.labels is not None:
            fields = {k: v for k, v in body.labels.items() if k in FIELD_ALIASES}
            named = {k: v for k, v in body.labels.items() if k not in FIELD_ALIASES}
            labels = pipeline.resolve_labels(**fields, labels=named)
        item = repo.add_catalog_item(
            session,
            owner_id=owner_id,
            name=body.name,
            source=CatalogSource.DESIGNER.value,
            labels=labels,
            fields=pipeline.friendly_fields(labels),
            image_id=image.id,
            seed=seed,
            truncation=truncation,
            params=params,
            checkpoint=pipeline.checkpoint_id if body.outfit_id else None,
            outfit_id=body.outfit_id,
            latent_sha256=latent,
        )
        return item_public(item, image)
