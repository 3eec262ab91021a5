"""A shop's real products: POST /v1/products (import one), GET /v1/products (paged, filters),
GET/DELETE /v1/products/{id}, GET /v1/products/{id}/photo and /image.

Importing needs a shop backend's API key (`X-API-Key` with the `shop` scope; a shopper session has
that scope too, but owns no shop): the product belongs to the key's owner, and the shop's own id
(the `id` attribute) makes the import idempotent: the same id again updates the same product (200)
instead of adding one (201). The photo goes through the upload checks of face photos (413, 415,
400) and then the catalog preparation (`tryon.services.products`); a product it cannot use is 400
(attributes outside the catalog's vocabulary) or 422 (the photo: no person where the row says
on-model, ...), with the refusal's `reason` code in the body. Nothing is stored then.

Products are public to every caller (the storefront lists them beside the generated catalog):
`GET /v1/products` lists every shop's, `?mine=true` only the calling shop's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from tryon.api.deps import PrincipalDep, RuntimeDep, SessionDep, ShopBackendDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.media import choose_media_type, image_response
from tryon.api.runtime import Runtime
from tryon.api.schemas import ImagePublic, ProductPage, ProductPublic, image_public
from tryon.api.uploads import decode_upload, read_upload
from tryon.catalog.products import Refusal
from tryon.db import repositories as repo
from tryon.db.models import Image, Product
from tryon.services import products as service
from tryon.services.storage import PNG, WEBP

router = APIRouter(prefix="/v1", tags=["products"])
T = TypeVar("T")

MAX_PER_PAGE = 100
ATTRIBUTE_REASONS = frozenset({"unknown_column", "unknown_value", "missing_value"})  # 400; the photo's: 422.


class ImagesReplacedError(Exception):
    """A product's image rows went away while it was read: a concurrent update or delete."""


def _one(session: Session, product_id: str) -> ProductPublic:
    row = repo.get_product(session, product_id=product_id)
    if row is None:
        raise not_found("product", product_id)
    return product_public(session, row)


def _read(session: Session, build: Callable[[], T]) -> T:
    """build(), read again where a concurrent import or delete replaced a product's images meanwhile."""
    for _ in range(3):
        try:
            return build()
        except ImagesReplacedError:
            session.rollback()  # A fresh snapshot (and no stale rows) for the next read.
            session.expire_all()
    raise ApiError(409, "the products changed while they were read (concurrent imports of the same product id); "
                        "try again")


def product_public(session: Session, product: Product) -> ProductPublic:
    def image(image_id: str, kind: str) -> ImagePublic:
        row = repo.get_image_any_owner(session, image_id=image_id)
        if row is None:  # Only a concurrent delete or update gets here.
            raise ImagesReplacedError(product.id)
        return image_public(row, url=f"/v1/products/{product.id}/{kind}")

    return ProductPublic(
        id=product.id,
        product_id=product.shop_product_id,
        name=product.name,
        attributes={str(k): str(v) for k, v in product.attributes.items()},
        labels={str(k): str(v) for k, v in product.labels.items()},
        category=product.category,
        colour=product.colour,
        gender=product.gender,
        view=product.view,
        photo=image(product.photo_image_id, "photo"),
        image=image(product.image_id, "image"),
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _attributes(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"attributes must be a JSON object ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"attributes must be a JSON object, got {type(value).__name__}")
    return value


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductPublic,
    responses={
        200: {"model": ProductPublic, "description": "The shop's product id was known: the product, updated"},
        **error_docs(400, 401, 403, 409, 413, 415, 422, 429),
    },
)
async def import_product(
    file: Annotated[UploadFile, File(description="The product photo (on a model, or flat): JPEG, PNG or WebP.")],
    attributes: Annotated[
        str,
        Form(
            max_length=10_000,
            description='JSON object in the catalog\'s vocabulary: {"id": "10057", "articleType": "Tshirts", '
            '"baseColour": "White", "gender": "Men", "masterCategory": "Apparel", "subCategory": "Topwear", '
            '"usage": "Casual", "view": "on_model" (optional: detected), "productDisplayName": "..."}',
        ),
    ],
    principal: ShopBackendDep,
    runtime: RuntimeDep,
    response: Response,
) -> ProductPublic:
    """Import (or update, by the shop's product id) one product of the calling shop."""
    return await run_in_threadpool(_import, runtime, principal.owner_id, file, attributes, response)


def _import(runtime: Runtime, owner_id: str, file: UploadFile, attributes: str, response: Response) -> ProductPublic:
    values = _attributes(attributes)
    name = f"the upload {file.filename!r}" if file.filename else "the upload"
    photo = decode_upload(read_upload(file, runtime.settings.max_upload_bytes), name=name, runtime=runtime)
    result = service.import_product(runtime.database, runtime.blobs, owner_id=owner_id, photo=photo, attributes=values)
    if isinstance(result, Refusal):
        code = 400 if result.reason in ATTRIBUTE_REASONS else 422
        raise ApiError(code, f"the product was not imported: {result.detail}", reason=result.reason)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    with runtime.database.sessions() as session:
        return _read(session, lambda: _one(session, result.product.id))


@router.get("/products", response_model=ProductPage, responses=error_docs(400, 401, 403, 409, 429))
def list_products(
    principal: PrincipalDep,
    session: SessionDep,
    category: Annotated[str | None, Query(max_length=100, examples=["tops"])] = None,
    colour: Annotated[str | None, Query(max_length=100, examples=["blue"])] = None,
    gender: Annotated[str | None, Query(max_length=100, examples=["Men"])] = None,
    view: Annotated[Literal["flat", "on_model"] | None, Query()] = None,
    mine: Annotated[bool, Query(description="Only the calling shop's products (needs its API key)")] = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 24,
) -> ProductPage:
    """Products of every shop (or `?mine=true`: the caller's), filtered by the model's groups
    (category = articleGroup, colour = colourGroup, gender, view; case-insensitive), newest first."""
    if mine and principal.kind != "api_key":
        raise ApiError(403, "?mine=true lists a shop's own products: send the shop's API key (X-API-Key)")

    def listing() -> ProductPage:
        rows, total = repo.list_products(
            session,
            owner_id=principal.owner_id if mine else None,
            category=category,
            colour=colour,
            gender=gender,
            view=view,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        return ProductPage(items=[product_public(session, r) for r in rows], page=page, per_page=per_page, total=total)

    return _read(session, listing)


@router.get("/products/{product_id}", response_model=ProductPublic, responses=error_docs(401, 404, 409))
def get_product(product_id: str, principal: PrincipalDep, session: SessionDep) -> ProductPublic:
    """One product (any shop's)."""
    return _read(session, lambda: _one(session, product_id))


@router.delete(
    "/products/{product_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404)
)
async def delete_product(product_id: str, principal: ShopBackendDep, runtime: RuntimeDep) -> Response:
    """Delete one of the calling shop's products with its photo and prepared image."""
    deleted = await run_in_threadpool(
        service.delete_product, runtime.database, runtime.blobs, owner_id=principal.owner_id, product_id=product_id
    )
    if not deleted:
        raise not_found("product", product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _product_image(session: Session, product_id: str, which: str) -> Image:
    row = repo.get_product(session, product_id=product_id)
    if row is None:
        raise not_found("product", product_id)
    image = repo.get_image_any_owner(session, image_id=row.photo_image_id if which == "photo" else row.image_id)
    if image is None:
        raise not_found("product", product_id)
    return image


@router.get(
    "/products/{product_id}/{which}",
    response_class=Response,
    responses={200: {"content": {PNG: {}, WEBP: {}}, "description": "The image"}, **error_docs(401, 404)},
)
def get_product_image(
    product_id: str,
    which: Literal["photo", "image"],
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    format: Annotated[Literal["png", "webp"] | None, Query(description="png or webp (default: by Accept)")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """A product's photo (as imported) or prepared image (every caller may read them)."""
    image = _product_image(session, product_id, which)
    gone = f"the {which} of product {product_id!r} is gone"
    return image_response(runtime, image, choose_media_type(format, accept), public=True, gone=gone)
