"""A shop's products over the API: POST /v1/products (shop API key, multipart photo + JSON
attributes; idempotent by the shop's id), GET (paged, filters, public), DELETE; refusals with a
reason and nothing stored. On SQLite and PostgreSQL, with the real catalog photo fixtures."""

from __future__ import annotations

import concurrent.futures
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import api_key, postgres_database, service_settings, shopper
from sqlalchemy import func, select

from tryon.api import create_app
from tryon.db.models import Image as ImageRow
from tryon.db.models import Product

IMAGES = Path(__file__).parent / "data" / "fashion" / "images"
ON_MODEL = IMAGES / "10057.jpg"       # Men, white T-shirt, on a model.
FLAT = IMAGES / "10025.jpg"           # Women, pink T-shirt, flat.
JEANS = IMAGES / "11280.jpg"          # Men, black jeans, worn (legs only).
TSHIRT = {"id": "10057", "gender": "Men", "masterCategory": "Apparel", "subCategory": "Topwear",
          "articleType": "Tshirts", "baseColour": "White", "usage": "Casual"}


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "sqlite":
        settings = service_settings(tmp_path)
        with TestClient(create_app(settings)) as c:
            yield c
    else:
        with postgres_database() as url, TestClient(create_app(service_settings(tmp_path, database_url=url))) as c:
            yield c


def post_product(client: TestClient, headers: dict[str, str], photo: Path | bytes, **attributes: Any) -> Any:
    data = photo.read_bytes() if isinstance(photo, Path) else photo
    return client.post(
        "/v1/products",
        headers=headers,
        files={"file": ("photo.jpg", data, "image/jpeg")},
        data={"attributes": json.dumps(attributes)},
    )


def counts(client: TestClient) -> tuple[int, int, int]:
    """(products, images rows, blob files) in the service."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        products = session.scalar(select(func.count()).select_from(Product))
        images = session.scalar(select(func.count()).select_from(ImageRow))
    return int(products or 0), int(images or 0), len(list(runtime.blobs.iter_digests()))


def test_a_shop_imports_a_product_and_shoppers_see_it(client: TestClient) -> None:
    shop = api_key(client, "shop")
    r = post_product(client, shop, ON_MODEL, **TSHIRT)
    assert r.status_code == 201, r.text
    product = r.json()
    assert product["product_id"] == "10057" and product["source"] == "product"
    assert product["view"] == "on_model"
    assert product["labels"] == {"articleGroup": "tops", "colourGroup": "white", "gender": "Men", "view": "on_model"}
    assert (product["category"], product["colour"], product["gender"]) == ("tops", "white", "Men")
    assert product["attributes"]["articleType"] == "Tshirts"
    assert counts(client) == (1, 2, 2)

    h = shopper(client)
    listed = client.get("/v1/products", headers=h).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == product["id"]
    assert client.get(f"/v1/products/{product['id']}", headers=h).json()["name"] == product["name"]
    photo = client.get(product["photo"]["url"], headers=h)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    with Image.open(ON_MODEL) as original, Image.open(io.BytesIO(photo.content)) as served:
        assert served.size == original.size                      # The real photo, at its own resolution.
    prepared = client.get(product["image"]["url"], headers=h, params={"format": "webp"})
    assert prepared.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(prepared.content)) as served:
        assert served.size == (128, 128)                         # Prepared like the training data.
    assert client.get("/v1/products").status_code == 401          # Anonymous callers: a session first.


def test_the_same_product_id_updates_the_same_product(client: TestClient) -> None:
    shop = api_key(client, "shop")
    first = post_product(client, shop, ON_MODEL, **TSHIRT).json()
    again = post_product(client, shop, FLAT, **{**TSHIRT, "baseColour": "Pink", "gender": "Women"})
    assert again.status_code == 200, again.text
    updated = again.json()
    assert updated["id"] == first["id"]
    assert updated["view"] == "flat" and updated["colour"] == "pink" and updated["gender"] == "Women"
    assert updated["created_at"] == first["created_at"] and updated["updated_at"] > first["updated_at"]
    assert counts(client) == (1, 2, 2)                            # The replaced photo and image are gone.
    same = post_product(client, shop, FLAT, **{**TSHIRT, "baseColour": "Pink", "gender": "Women"})
    assert same.status_code == 200 and counts(client) == (1, 2, 2)
    other_shop = api_key(client, "shop")                          # Ids are per shop.
    assert post_product(client, other_shop, ON_MODEL, **TSHIRT).status_code == 201
    assert counts(client)[0] == 2


def test_an_import_whose_images_a_concurrent_import_replaced_reads_the_product_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another import of the same id may commit between reading the product and reading its images (seen on
    # PostgreSQL under load as a 404 for an import that had succeeded): the answer reads it again.
    import tryon.api.routers.products as products_router

    real = products_router.repo.get_image_any_owner
    misses = iter([True])

    def replaced_once(session: Any, *, image_id: str) -> Any:
        return None if next(misses, False) else real(session, image_id=image_id)

    monkeypatch.setattr(products_router.repo, "get_image_any_owner", replaced_once)
    shop = api_key(client, "shop")
    created = post_product(client, shop, ON_MODEL, **TSHIRT)
    assert created.status_code == 201, created.text
    assert client.get(f"/v1/products/{created.json()['id']}", headers=shop).status_code == 200


def test_concurrent_imports_of_one_product_id_make_one_product(client: TestClient) -> None:
    shop = api_key(client, "shop")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post_product(client, shop, ON_MODEL, **TSHIRT), range(4)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert counts(client) == (1, 2, 2)


@pytest.mark.parametrize(
    ("photo", "attributes", "status", "reason"),
    [
        (ON_MODEL, {**TSHIRT, "colr": "Red"}, 400, "unknown_column"),
        (ON_MODEL, {**TSHIRT, "gender": "Martians"}, 400, "unknown_value"),
        (ON_MODEL, {k: v for k, v in TSHIRT.items() if k != "id"}, 400, "missing_value"),
        (FLAT, {**TSHIRT, "view": "on_model"}, 422, "no_person"),
        (Image.new("RGB", (200, 200), "white"), TSHIRT, 422, "no_foreground"),
    ],
)
def test_an_unusable_product_is_refused_with_a_reason_and_nothing_is_stored(
    client: TestClient, photo: Path | Image.Image, attributes: dict[str, str], status: int, reason: str
) -> None:
    if isinstance(photo, Image.Image):
        buf = io.BytesIO()
        photo.save(buf, format="PNG")
        data: Path | bytes = buf.getvalue()
    else:
        data = photo
    r = post_product(client, api_key(client, "shop"), data, **attributes)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason and "not imported" in r.json()["detail"]
    assert counts(client) == (0, 0, 0)


def test_bad_uploads_get_their_usual_answers(client: TestClient) -> None:
    shop = api_key(client, "shop")
    r = client.post("/v1/products", headers=shop, files={"file": ("x.txt", b"hello", "text/plain")},
                    data={"attributes": json.dumps(TSHIRT)})
    assert r.status_code == 415
    r = client.post("/v1/products", headers=shop, files={"file": ("p.jpg", ON_MODEL.read_bytes(), "image/jpeg")},
                    data={"attributes": "{not json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = client.post("/v1/products", headers=shop, files={"file": ("p.jpg", ON_MODEL.read_bytes(), "image/jpeg")},
                    data={"attributes": "[1, 2]"})
    assert r.status_code == 400
    assert counts(client) == (0, 0, 0)


def test_only_a_shop_key_imports_and_deletes(client: TestClient) -> None:
    h = shopper(client)
    r = post_product(client, h, ON_MODEL, **TSHIRT)
    assert r.status_code == 403 and "API key" in r.json()["detail"]
    assert post_product(client, api_key(client, "designer"), ON_MODEL, **TSHIRT).status_code == 201  # Implies shop.
    shop = api_key(client, "shop")
    product = post_product(client, shop, FLAT, **{**TSHIRT, "id": "p-2"}).json()
    assert client.delete(f"/v1/products/{product['id']}", headers=h).status_code == 403
    assert client.delete(f"/v1/products/{product['id']}", headers=api_key(client, "shop")).status_code == 404
    assert client.get("/v1/products", headers=h, params={"mine": "true"}).status_code == 403
    assert client.get("/v1/products", headers=shop, params={"mine": "true"}).json()["total"] == 1
    assert client.delete(f"/v1/products/{product['id']}", headers=shop).status_code == 204
    assert client.get(f"/v1/products/{product['id']}", headers=h).status_code == 404
    assert client.delete(f"/v1/products/{product['id']}", headers=shop).status_code == 404
    assert counts(client) == (1, 2, 2)                            # The designer's product is untouched.


def test_products_are_filtered_and_paged(client: TestClient) -> None:
    shop = api_key(client, "shop")
    assert post_product(client, shop, ON_MODEL, **TSHIRT).status_code == 201
    assert post_product(client, shop, FLAT, **{**TSHIRT, "id": "10025", "gender": "Women",
                                               "baseColour": "Pink"}).status_code == 201
    jeans = {**TSHIRT, "id": "11280", "subCategory": "Bottomwear", "articleType": "Jeans", "baseColour": "Black"}
    assert post_product(client, shop, JEANS, **jeans).status_code == 201
    h = shopper(client)

    def ids(**params: Any) -> list[str]:
        return [p["product_id"] for p in client.get("/v1/products", headers=h, params=params).json()["items"]]

    assert sorted(ids()) == ["10025", "10057", "11280"]
    assert sorted(ids(category="TOPS")) == ["10025", "10057"]
    assert ids(category="bottoms") == ["11280"]
    assert ids(colour="pink") == ["10025"]
    assert sorted(ids(gender="Men")) == ["10057", "11280"]
    assert ids(view="flat") == ["10025"]
    assert ids(category="tops", view="on_model") == ["10057"]
    pages = [ids(per_page=2, page=1), ids(per_page=2, page=2)]
    assert len(pages[0]) == 2 and len(pages[1]) == 1 and not set(pages[0]) & set(pages[1])
    assert client.get("/v1/products", headers=h, params={"view": "sideways"}).status_code == 400


def test_a_failed_store_leaves_nothing_behind(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from tryon.db import repositories as repo

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(repo, "upsert_product", broken)  # After both images are written.
    assert post_product(client, api_key(client, "shop"), ON_MODEL, **TSHIRT).status_code == 500
    assert counts(client) == (0, 0, 0)
