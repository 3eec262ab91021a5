"""Deleting a shopper's data: DELETE /v1/sessions/current through the real app, and the retention
sweep of expired anonymous sessions on SQLite and PostgreSQL (every owned table, FK order, blobs
shared with another owner kept)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import FACE_PHOTO, save_tiny_fashion_checkpoint, service_settings, shopper
from sqlalchemy import func, select
from test_db_repositories import db  # noqa: F401 (the sqlite / postgresql fixture)

from tryon.api import create_app
from tryon.api.retention import purge_expired_sessions
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.models import Base, Blob, Owner
from tryon.services.storage import save_image


def test_every_table_with_an_owner_is_deleted_with_it() -> None:
    owned = {t.name for t in Base.metadata.tables.values() if "owner_id" in t.c}
    assert owned == {m.__tablename__ for m in repo.OWNED_TABLES}


def rows_of(database: Database, owner_id: str) -> dict[str, int]:
    """Rows per table that belong to `owner_id` (only non-zero counts)."""
    counts = {}
    with database.sessions() as session:
        for table in Base.metadata.tables.values():
            column = table.c.get("owner_id") if table.name != "owners" else table.c.id
            if column is not None:
                n = session.scalar(select(func.count()).select_from(table).where(column == owner_id))
                if n:
                    counts[table.name] = int(n)
    return counts


def blob_files_match_rows(database: Database, blobs: BlobStore) -> None:
    with database.sessions() as session:
        rows = set(session.scalars(select(Blob.sha256)))
    files = {p.name for p in blobs.root.rglob("*") if p.is_file()}
    assert files == rows


def fill_owner(session: object, blobs: BlobStore, owner_id: str, seed: int) -> None:
    """One of everything an owner can have, each row pointing at the others the way the service links them."""
    rng = np.random.default_rng(seed)
    shared = np.full((8, 8, 3), 7, np.uint8)             # The same bytes for every owner: a shared blob.
    face = repo.create_face(session, owner_id=owner_id)  # type: ignore[arg-type]
    job, _ = repo.create_job(session, owner_id=owner_id, kind="face.project",  # type: ignore[arg-type]
                             payload={"face_id": face.id}, max_attempts=1)
    face.projection_job_id = job.id
    face.latent_sha256 = repo.store_blob(session, blobs=blobs, data=rng.bytes(64),  # type: ignore[arg-type]
                                         media_type="application/x-npz").sha256
    photo = save_image(session, blobs=blobs, owner_id=owner_id, image=shared, kind="face_photo",  # type: ignore[arg-type]
                       face_id=face.id)
    own = save_image(session, blobs=blobs, owner_id=owner_id,  # type: ignore[arg-type]
                     image=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), kind="outfit")
    repo.create_edit(session, owner_id=owner_id, face_id=face.id, params={}, image_id=photo.id,  # type: ignore[arg-type]
                     latent_sha256=face.latent_sha256, job_id=job.id)
    outfit = repo.create_outfit(session, owner_id=owner_id, labels={}, seed=0, truncation=1.0,  # type: ignore[arg-type]
                                checkpoint="x", image_id=own.id)
    garment = repo.create_garment(session, owner_id=owner_id, photo_image_id=own.id)  # type: ignore[arg-type]
    garment.outfit_id, garment.job_id = outfit.id, job.id
    tryon = repo.create_tryon(session, owner_id=owner_id, face_id=face.id, outfit_id=outfit.id,  # type: ignore[arg-type]
                              garment_id=garment.id)
    tryon.image_id, tryon.job_id = own.id, job.id


def test_the_sweep_deletes_expired_sessions_only(db: Database, tmp_path: Path) -> None:  # noqa: F811
    blobs = BlobStore(tmp_path / "blobs")
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    ttl = dt.timedelta(days=30)
    with db.sessions.begin() as session:
        old, _ = repo.create_session_token(session, ttl=ttl, now=now - ttl - dt.timedelta(hours=30))
        recent, _ = repo.create_session_token(session, ttl=ttl, now=now - ttl - dt.timedelta(hours=2))
        live, _ = repo.create_session_token(session, ttl=ttl, now=now - dt.timedelta(days=1))
        key, _ = repo.create_api_key(session, name="shop", scopes=["shop"])
        owners = [old.owner_id, recent.owner_id, live.owner_id, key.owner_id]
        for i, owner_id in enumerate(owners):
            fill_owner(session, blobs, owner_id, seed=i)
    before = {o: rows_of(db, o) for o in owners}
    linked = {"owners", "images", "jobs", "faces", "edits", "outfits", "garments", "tryons"}
    assert all(set(counts) >= linked for counts in before.values()), before

    grace = dt.timedelta(hours=24)
    with db.sessions() as session:
        assert repo.expired_session_owners(session, before=now - grace) == [old.owner_id]
    assert purge_expired_sessions(db, blobs, grace=grace, now=now) == 1
    assert rows_of(db, old.owner_id) == {}
    assert all(rows_of(db, o) == before[o] for o in owners[1:])
    blob_files_match_rows(db, blobs)

    assert purge_expired_sessions(db, blobs, grace=dt.timedelta(0), now=now) == 1  # The one past its expiry.
    assert rows_of(db, recent.owner_id) == {} and rows_of(db, live.owner_id) == before[live.owner_id]
    assert purge_expired_sessions(db, blobs, grace=dt.timedelta(0), now=now + ttl) == 1
    assert rows_of(db, key.owner_id) == before[key.owner_id]  # An API client is never swept.
    blob_files_match_rows(db, blobs)
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Owner)) == 1


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, fashion_checkpoint=save_tiny_fashion_checkpoint(tmp_path / "fashion"),
                                face_project_steps=2)
    with TestClient(create_app(settings)) as c:
        yield c


def test_a_shopper_deletes_everything_of_their_session(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    alice, bob = shopper(client), shopper(client)
    faces = {}
    for who in (alice, bob):  # The same photo: its blobs are shared by both owners.
        r = client.post("/v1/faces", headers=who, files={"file": ("me.jpg", FACE_PHOTO.read_bytes(), "image/jpeg")})
        assert r.status_code == 201, r.text
        faces[who["Authorization"]] = r.json()
        job = client.get(f"/v1/jobs/{r.json()['projection_job']['id']}?wait=30", headers=who).json()
        assert job["status"] == "succeeded", job
    outfit = client.post("/v1/outfits", headers=alice, json={"view": "on_model", "seed": 1}).json()
    r = client.post("/v1/tryon", headers=alice, json={"face_id": faces[alice["Authorization"]]["id"],
                                                      "outfit_id": outfit["id"]})
    assert r.status_code == 202, r.text
    assert client.get(f"/v1/jobs/{r.json()['job']['id']}?wait=30", headers=alice).json()["status"] == "succeeded"
    listed = client.get("/v1/faces", headers=alice).json()
    assert [f["id"] for f in listed] == [faces[alice["Authorization"]]["id"]] and listed[0]["status"] == "projected"

    alice_id = client.get("/v1/faces", headers=alice).json()[0]["id"]
    with runtime.database.sessions() as session:
        owner_id = session.scalar(select(Base.metadata.tables["faces"].c.owner_id).where(
            Base.metadata.tables["faces"].c.id == alice_id))
    assert len(rows_of(runtime.database, owner_id)) >= 7
    assert client.delete("/v1/sessions/current", headers=alice).status_code == 204
    assert rows_of(runtime.database, owner_id) == {}
    assert client.get("/v1/faces", headers=alice).status_code == 401  # The token is gone too.
    blob_files_match_rows(runtime.database, runtime.blobs)
    bob_face = client.get(f"/v1/faces/{faces[bob['Authorization']]['id']}", headers=bob).json()
    for image in bob_face["images"]:  # Bob's copies of the same bytes are still there.
        assert client.get(image["url"], headers=bob).status_code == 200

    r = client.delete("/v1/sessions/current", headers={"X-API-Key": runtime_admin_key(client)})
    assert r.status_code == 403 and "only an anonymous session" in r.json()["detail"]


def runtime_admin_key(client: TestClient) -> str:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:
        _, key = repo.create_api_key(session, name="ops", scopes=["admin"])
    return key


def test_the_service_sweeps_expired_sessions_in_the_background(tmp_path: Path) -> None:
    settings = service_settings(tmp_path, session_ttl_hours=0.5 / 3600, session_data_grace_hours=0,
                                retention_sweep_minutes=0.1 / 60)
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        body = client.post("/v1/sessions").json()
        for _ in range(200):  # Expires after 0.5 s; swept within 0.1 s of that.
            if not rows_of(runtime.database, body["owner_id"]):
                break
            time.sleep(0.05)
        assert rows_of(runtime.database, body["owner_id"]) == {}
