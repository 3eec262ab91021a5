"""GET /v1/labels and /v1/outfits on a tiny random checkpoint: labels from the checkpoint's schema,
images equal to `tryon generate`'s, batched generation equal to one-by-one, async jobs with
idempotency keys, ownership, and a clear 503 without a model."""

from __future__ import annotations

import concurrent.futures
import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import api_key, postgres_database, save_tiny_fashion_checkpoint, service_settings, shopper
from sqlalchemy import select

from tryon.api import create_app
from tryon.db.models import Image as DbImage
from tryon.services.fashion import FashionService, OutfitSpec


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_fashion_checkpoint(tmp_path_factory.mktemp("ckpt") / "fashion")


@pytest.fixture
def client(tmp_path: Path, checkpoint: Path) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, batch_max_wait_ms=20.0)
    with TestClient(create_app(settings)) as c:
        yield c



def cli_image(checkpoint: Path, labels: list[str], seed: int, truncation: float) -> np.ndarray:
    """What `tryon generate` makes for the same request (uint8 [H, W, 3])."""
    from tryon.checkpoint import load_checkpoint
    from tryon.commands.generate import condition_vector, generate_images
    from tryon.imaging import to_uint8

    ckpt = load_checkpoint(checkpoint, names=("G_ema",), device="cpu")
    G = ckpt.networks["G_ema"]
    c = condition_vector(int(G.c_dim), ckpt.label_schema, labels)
    return to_uint8(generate_images(G, [seed], c, truncation_psi=truncation))[0]


def test_labels_come_from_the_checkpoint(client: TestClient) -> None:
    admin = api_key(client)
    health = client.get("/health", headers=admin).json()["models"]["fashion"]
    assert health["status"] == "not_loaded"  # Lazily: nothing loaded at start-up.
    body = client.get("/v1/labels").json()
    assert body["conditional"] and body["resolution"] == 16 and len(body["checkpoint_id"]) == 64
    by_name = {c["name"]: c for c in body["columns"]}
    assert by_name["articleType"]["field"] == "category" and by_name["baseColour"]["field"] == "colour"
    assert by_name["articleType"]["values"] == ["Tshirts", "Shirts", "Jeans"]
    assert client.get("/health", headers=admin).json()["models"]["fashion"]["status"] == "loaded"


def test_an_outfit_is_the_image_tryon_generate_makes(client: TestClient, checkpoint: Path) -> None:
    alice, bob = shopper(client), shopper(client)
    request = {
        "category": "Shirts",
        "colour": "blue",
        "gender": "Women",
        "view": "on_model",
        "seed": 7,
        "truncation": 0.6,
    }
    r = client.post("/v1/outfits", headers=alice, json=request)
    assert r.status_code == 201, r.text
    outfit = r.json()
    assert outfit["labels"] == {"articleType": "Shirts", "baseColour": "Blue", "gender": "Women", "view": "on_model"}
    assert outfit["seed"] == 7 and outfit["truncation"] == 0.6
    png = client.get(outfit["image"]["url"], headers=alice)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(png.content)))
    want = cli_image(checkpoint, ["articleType=Shirts", "baseColour=Blue", "gender=Women", "view=on_model"], 7, 0.6)
    assert got.shape == (16, 16, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    other_seed = client.post("/v1/outfits", headers=alice, json={**request, "seed": 8}).json()
    other = np.asarray(Image.open(io.BytesIO(client.get(other_seed["image"]["url"], headers=alice).content)))
    assert np.abs(other.astype(int) - got.astype(int)).max() > 10  # The seed matters.

    assert client.get(f"/v1/outfits/{outfit['id']}", headers=alice).json()["image"] == outfit["image"]
    assert client.get(f"/v1/outfits/{outfit['id']}", headers=bob).status_code == 404
    assert client.get(outfit["image"]["url"], headers=bob).status_code == 404


def test_an_outfit_keeps_its_latent_sync_or_async(client: TestClient) -> None:
    """Every stored outfit has its W+ latent (a catalog entry or a try-on can start from it): the
    mapping of its spec, the same from the direct answer and from the job."""
    from tryon.db.models import Outfit
    from tryon.services.storage import load_latent

    h = shopper(client)
    body = {"category": "Jeans", "gender": "Men", "view": "on_model", "seed": 5, "truncation": 0.5}
    direct = client.post("/v1/outfits", headers=h, json=body).json()
    job = client.post("/v1/outfits", headers={**h, "Prefer": "respond-async"}, json=body).json()
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/jobs/{job['id']}", headers=h).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    pipe = runtime.fashion.pipeline()
    spec = pipe.spec(category="Jeans", gender="Men", view="on_model", seed=5, truncation=0.5)
    want = pipe.map_specs([spec])[0].cpu().numpy()
    with runtime.database.sessions() as session:
        for outfit_id in (direct["id"], job["result"]["outfit_id"]):
            row = session.get(Outfit, outfit_id)
            assert row is not None and row.latent_sha256 is not None, outfit_id
            ws = load_latent(runtime.blobs.get(row.latent_sha256))
            assert ws.shape == want.shape and np.allclose(ws, want, atol=1e-5)
            assert row.params is None  # A plain outfit: no variant parameters.


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"category": "Hats"}, "its values are: Tshirts, Shirts, Jeans"),
        ({"labels": {"season": "Summer"}}, "unknown label 'season'"),
        ({}, "give at least one label"),
        ({"category": "Jeans", "labels": {"articleType": "Shirts"}}, "given twice"),
    ],
)
def test_unknown_labels_are_400_with_the_allowed_values(
    client: TestClient, body: dict[str, object], phrase: str
) -> None:
    r = client.post("/v1/outfits", headers=shopper(client), json=body)
    assert r.status_code == 400 and phrase in r.json()["detail"], r.text


def test_batched_generation_equals_one_by_one(tmp_path: Path, checkpoint: Path) -> None:
    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, batch_max_size=8, batch_max_wait_ms=50.0)
    service = FashionService(settings)
    specs = [
        service.resolve(fields={"category": cat, "gender": "Men"}, labels={}, seed=seed, truncation=psi)
        for seed, cat, psi in [(0, "Tshirts", 1.0), (1, "Jeans", 0.5), (2, "Shirts", 0.7), (3, "Tshirts", 0.0)]
    ]
    alone = [service.generate_batch([spec])[0] for spec in specs]
    futures = [service.submit(spec) for spec in specs]
    together = [f.result(60) for f in futures]
    assert service.batcher.stats.largest > 1  # They did share a forward pass...
    for a, b in zip(alone, together, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # ...and each got its own image.
    # Truncation 0 is the average outfit for the label: the seed no longer matters.
    zero = [
        service.generate_batch(
            [OutfitSpec(labels={"articleType": "Tshirts", "gender": "Men"}, seed=s, truncation=0.0)]
        )[0]
        for s in (5, 6)
    ]
    assert np.abs(zero[0].astype(int) - zero[1].astype(int)).max() <= 1
    service.close()


def test_concurrent_requests_are_batched(client: TestClient) -> None:
    h = shopper(client)
    client.get("/v1/labels")  # Load the model first so that the requests race on generation only.

    def one(seed: int) -> int:
        return client.post("/v1/outfits", headers=h, json={"category": "Jeans", "seed": seed}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(16)))
    assert codes == [201] * 16
    stats = client.app.state.runtime.fashion.batcher.stats  # type: ignore[attr-defined]
    assert stats.items == 16 and stats.batches < 16
    assert "tryon_batch_size_count" in client.get("/metrics").text


def test_async_outfit_job_with_idempotency_key(client: TestClient) -> None:
    h = {**shopper(client), "Prefer": "respond-async", "Idempotency-Key": "catalog-42"}
    body = {"category": "Tshirts", "colour": "Black", "seed": 42}
    r = client.post("/v1/outfits", headers=h, json=body)
    assert r.status_code == 202 and r.json()["kind"] == "outfit.generate"
    job_id = r.json()["id"]
    assert client.post("/v1/outfits", headers=h, json=body).json()["id"] == job_id
    assert client.post("/v1/outfits", headers=h, json={**body, "seed": 43}).status_code == 409
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/jobs/{job_id}", headers=h).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "succeeded" and job["progress"] == 1.0, job
    outfit = client.get(f"/v1/outfits/{job['result']['outfit_id']}", headers=h).json()
    assert outfit["seed"] == 42 and outfit["image"]["url"] == job["result"]["image_url"]


def test_no_model_is_a_clear_503(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, fashion_checkpoint=tmp_path / "missing"))) as client:
        r = client.post("/v1/outfits", headers=shopper(client), json={"category": "Jeans"})
        assert r.status_code == 503 and "cannot be loaded" in r.json()["detail"]
        assert client.get("/v1/labels").status_code == 503
        health = client.get("/health", headers=api_key(client))
        assert health.status_code == 200 and health.json()["models"]["fashion"]["status"] == "unavailable"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with postgres_database() as url:
            yield url


def test_concurrent_same_seed_outfits_all_succeed(tmp_path: Path, checkpoint: Path, database_url: str | None) -> None:
    """Same labels and seed from several callers at once: one image, one blob row, every request 201
    (the blob row's insert raced and 500'd before)."""
    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, database_url=database_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = [shopper(client) for _ in range(8)]
        body = {"category": "Shirts", "colour": "Blue", "gender": "Women", "view": "on_model", "seed": 4242}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda h: client.post("/v1/outfits", headers=h, json=body), headers))
        assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers if a.status_code != 201]
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        with runtime.database.sessions() as session:
            shas = session.scalars(select(DbImage.blob_sha256).where(DbImage.kind == "outfit")).all()
        assert len(shas) == 8 and len(set(shas)) == 1
