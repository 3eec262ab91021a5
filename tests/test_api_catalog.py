"""GET /v1/catalog (generated once on first use, filters, paging, shared images), GET /v1/catalog/{id},
POST /v1/catalog (designer scope). The fill is tested on SQLite and PostgreSQL, with concurrent
first requests from one process and from two "processes" (two services on one database)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import postgres_database, service_settings, shopper
from sqlalchemy import func, select

from tryon.api import create_app
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.migrate import upgrade_to_head
from tryon.db.models import CatalogFill, CatalogItem
from tryon.services.fashion import CATALOG_PER_GROUP, FashionService, ensure_catalog

PLAN = 3 * 2 * 2 * CATALOG_PER_GROUP  # FASHION_SCHEMA: categories x genders x views x items per group.


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    else:
        with postgres_database() as url:
            yield url


def designer(client: TestClient, scopes: tuple[str, ...] = ("designer", "shop")) -> dict[str, str]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:
        _, key = repo.create_api_key(session, name="designer", scopes=scopes)
    return {"X-API-Key": key}


def test_concurrent_first_requests_generate_the_catalog_once(tmp_path: Path, checkpoint: Path,
                                                            database_url: str) -> None:
    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        h = shopper(client)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: client.get("/v1/catalog?per_page=5", headers=h), range(4)))
        assert [a.status_code for a in answers] == [200] * 4, answers[0].text
        assert {a.json()["total"] for a in answers} == {PLAN}
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        with runtime.database.sessions() as session:
            assert session.scalar(select(func.count()).select_from(CatalogItem)) == PLAN
            assert session.scalar(select(func.count()).select_from(CatalogFill)) == 1


def test_two_processes_fill_the_catalog_once(tmp_path: Path, checkpoint: Path, database_url: str) -> None:
    database = Database.from_url(database_url)
    upgrade_to_head(database.engine)
    blobs = BlobStore(tmp_path / "blobs")
    services = [FashionService(service_settings(tmp_path, fashion_checkpoint=checkpoint)) for _ in range(2)]
    for service in services:
        service.pipeline()  # Loaded first, so that both race on the fill itself.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda s: ensure_catalog(s, database, blobs), services))
    assert counts == [PLAN, PLAN]
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CatalogItem)) == PLAN
        rows, total = repo.list_catalog_items(session, category="JEANS", gender="women", offset=0, limit=100)
        assert total == 2 * CATALOG_PER_GROUP  # Jeans x Women x (flat, on_model).
        assert {r.category for r in rows} == {"Jeans"} and {r.gender for r in rows} == {"Women"}
    for service in services:
        service.close()
    database.dispose()


def test_a_dead_fill_is_taken_over(tmp_path: Path, checkpoint: Path) -> None:
    import datetime as dt

    database = Database.from_url(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    upgrade_to_head(database.engine)
    with database.sessions() as session:
        first = repo.claim_catalog_fill(session, checkpoint="c" * 64, stale_after=dt.timedelta(seconds=60))
        assert first is not None
        assert repo.claim_catalog_fill(session, checkpoint="c" * 64, stale_after=dt.timedelta(seconds=60)) is None
        later = repo.utcnow() + dt.timedelta(seconds=120)
        taken = repo.claim_catalog_fill(session, checkpoint="c" * 64, stale_after=dt.timedelta(seconds=60), now=later)
        assert taken is not None and taken.status == "filling"
    database.dispose()


def test_filters_paging_and_shared_images(client: TestClient) -> None:
    alice, bob = shopper(client), shopper(client)
    page1 = client.get("/v1/catalog?per_page=5&page=1", headers=alice).json()
    page2 = client.get("/v1/catalog?per_page=5&page=2", headers=alice).json()
    assert page1["total"] == PLAN and len(page1["items"]) == 5 and page1["page"] == 1
    assert not {i["id"] for i in page1["items"]} & {i["id"] for i in page2["items"]}
    first = page1["items"][0]
    assert first["source"] == "generated" and first["seed"] == 0 and first["name"] == "Black Tshirts (Men, flat)"
    assert first["labels"] == {"articleType": "Tshirts", "baseColour": "Black", "gender": "Men", "view": "flat"}
    jeans = client.get("/v1/catalog?category=jeans&view=on_model&per_page=100", headers=alice).json()
    assert jeans["total"] == 2 * CATALOG_PER_GROUP
    assert all(i["category"] == "Jeans" and i["view"] == "on_model" for i in jeans["items"])
    assert client.get("/v1/catalog?colour=purple", headers=alice).json()["total"] == 0
    png = client.get(first["image"]["url"], headers=bob)  # Another caller reads the shared image.
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get(first["image"]["url"] + "?format=webp", headers=bob).headers["content-type"] == "image/webp"
    assert client.get(f"/v1/catalog/{first['id']}", headers=bob).json() == first
    assert client.get("/v1/catalog/nope", headers=bob).status_code == 404
    assert client.get("/v1/catalog?per_page=1000", headers=bob).status_code == 400
    assert client.get("/v1/catalog").status_code == 401


def test_the_catalog_counts_each_filter_value_given_the_others(client: TestClient) -> None:
    """`counts` says what each filter value would hold (what a shop can show as "Jeans (8)")."""
    alice = shopper(client)
    everything = client.get("/v1/catalog?per_page=1", headers=alice).json()
    assert set(everything["counts"]) == {"category", "colour", "gender", "view"}
    for field, counts in everything["counts"].items():
        assert sum(counts.values()) == PLAN, field  # Without filters, every item counts once per field.
    page = client.get("/v1/catalog?category=jeans&view=on_model&per_page=1", headers=alice).json()
    counts = page["counts"]
    assert counts["category"]["Jeans"] == page["total"] == 2 * CATALOG_PER_GROUP
    assert sum(counts["category"].values()) == 3 * 2 * CATALOG_PER_GROUP, "categories: all on-model items"
    assert counts["view"] == {"flat": 2 * CATALOG_PER_GROUP, "on_model": 2 * CATALOG_PER_GROUP}, "views: all jeans"
    assert counts["gender"] == {"Men": CATALOG_PER_GROUP, "Women": CATALOG_PER_GROUP}
    assert "Purple" not in counts["colour"]
    for colour, n in counts["colour"].items():
        one = client.get(f"/v1/catalog?category=jeans&view=on_model&colour={colour}&per_page=1", headers=alice)
        assert one.json()["total"] == n, colour


def test_designers_save_outfits_to_the_catalog(client: TestClient) -> None:
    d, shop = designer(client), shopper(client)
    outfit = client.post("/v1/outfits", headers=d, json={"category": "Jeans", "colour": "Blue", "seed": 5}).json()
    r = client.post("/v1/catalog", headers=d, json={"outfit_id": outfit["id"], "name": "Blue jeans"})
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["source"] == "designer" and item["outfit_id"] == outfit["id"] and item["seed"] == 5
    assert item["category"] == "Jeans" and item["colour"] == "Blue"
    listed = client.get("/v1/catalog?source=designer", headers=shop).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    assert client.get(item["image"]["url"], headers=shop).status_code == 200
    relabelled = client.post(
        "/v1/catalog",
        headers=d,
        json={"image_id": outfit["image"]["id"], "name": "Jeans", "labels": {"category": "jeans", "gender": "women"}},
    ).json()
    assert relabelled["labels"] == {"articleType": "Jeans", "gender": "Women"}
    assert client.get("/v1/catalog", headers=shop).json()["total"] == PLAN + 2


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"name": "x"}, 400, "exactly one of outfit_id or image_id"),
        ({"outfit_id": "nope", "name": "x"}, 404, "no outfit"),
        ({"image_id": "nope", "name": "x"}, 404, "no image"),
        ({"outfit_id": "a", "image_id": "b", "name": "x"}, 400, "exactly one"),
        ({"outfit_id": "a"}, 400, "name"),
    ],
)
def test_bad_saves(client: TestClient, body: dict[str, object], status: int, phrase: str) -> None:
    r = client.post("/v1/catalog", headers=designer(client), json=body)
    assert r.status_code == status and phrase in r.json()["detail"], r.text


def test_saving_needs_the_designer_scope(client: TestClient) -> None:
    shop_key = designer(client, scopes=("shop",))
    outfit = client.post("/v1/outfits", headers=shop_key, json={"category": "Jeans"}).json()
    r = client.post("/v1/catalog", headers=shop_key, json={"outfit_id": outfit["id"], "name": "x"})
    assert r.status_code == 403
    body = {"outfit_id": outfit["id"], "name": "x"}
    assert client.post("/v1/catalog", headers=shopper(client), json=body).status_code == 403
    other = designer(client)  # A designer cannot save someone else's outfit.
    assert client.post("/v1/catalog", headers=other, json=body).status_code == 404


def test_no_model_is_503(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, fashion_checkpoint=tmp_path / "missing"))) as client:
        r = client.get("/v1/catalog", headers=shopper(client))
        assert r.status_code == 503 and "cannot be loaded" in r.json()["detail"]


def test_a_stored_catalog_is_listed_without_a_model(tmp_path: Path, checkpoint: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    with TestClient(create_app(service_settings(tmp_path, fashion_checkpoint=checkpoint, database_url=url))) as c:
        assert c.get("/v1/catalog", headers=shopper(c)).json()["total"] == PLAN
    broken = service_settings(tmp_path, fashion_checkpoint=tmp_path / "missing", database_url=url)
    with TestClient(create_app(broken)) as c:
        h = shopper(c)
        page = c.get("/v1/catalog?per_page=2", headers=h).json()
        assert page["total"] == PLAN and c.get(page["items"][0]["image"]["url"], headers=h).status_code == 200
