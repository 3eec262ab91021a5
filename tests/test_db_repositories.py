"""Database: migrations match the models (SQLite and PostgreSQL), SQLite pragmas, secrets hashed at
rest, idempotency keys, face deletion with its derived images and blobs, job claims and leases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import png_bytes, postgres_database
from sqlalchemy import func, inspect, select, text

from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.migrate import current_revision, head_revision, schema_differences, upgrade_to_head
from tryon.db.models import ApiKey, Base, Blob, Face, Image, Job, OwnerKind, SessionToken, utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.from_url(f"sqlite:///{tmp_path / 'test.sqlite3'}")
        upgrade_to_head(database.engine)
        yield database
        database.dispose()
    else:
        with postgres_database() as url:
            database = Database.from_url(url)
            upgrade_to_head(database.engine)
            yield database
            database.dispose()


def test_migrated_schema_equals_the_models(db: Database) -> None:
    assert current_revision(db.engine) == head_revision()
    assert schema_differences(db.engine) == []
    assert set(inspect(db.engine).get_table_names()) >= set(Base.metadata.tables)
    assert upgrade_to_head(db.engine) == head_revision()  # A second run is a no-op.


def test_schema_check_sees_a_drifted_database(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{tmp_path / 'drift.sqlite3'}")
    upgrade_to_head(database.engine)
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE outfits ADD COLUMN surprise INTEGER"))
    assert any("surprise" in repr(diff) for diff in schema_differences(database.engine))
    database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{tmp_path / 'nested' / 'db.sqlite3'}")
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    upgrade_to_head(database.engine)
    with pytest.raises(Exception, match="FOREIGN KEY"), database.sessions.begin() as session:
        repo.create_face(session, owner_id="no-such-owner")
    database.dispose()


def test_session_tokens_and_api_keys_are_stored_hashed(db: Database) -> None:
    with db.sessions.begin() as session:
        row, token = repo.create_session_token(session, ttl=dt.timedelta(hours=1))
        key_row, key = repo.create_api_key(session, name="shop", scopes=["shop", "designer"])
        session_id, key_id = row.id, key_row.id
    assert token.startswith("tys_") and key.startswith("tyk_") and len(key) > 40
    with db.sessions() as session:
        stored_session = session.get(SessionToken, session_id)
        stored_key = session.get(ApiKey, key_id)
        assert stored_session is not None and stored_key is not None
        assert stored_session.token_hash == repo.token_digest(token) != token
        assert stored_key.key_hash == repo.token_digest(key) and stored_key.prefix == key[:12]
        assert stored_key.scope_set == {"shop", "designer"}
        # Found by the secret; nothing else about the secret is kept.
        assert repo.find_session(session, token=token) is not None
        assert repo.find_api_key(session, key=key) is not None
        assert repo.find_api_key(session, key=key + "x") is None
        dump = " ".join(
            str(v)
            for table in ("sessions", "api_keys")
            for r in session.execute(text(f"SELECT * FROM {table}"))
            for v in r
        )
        assert token not in dump and key not in dump
        # Expired sessions and revoked keys stop working.
        assert repo.find_session(session, token=token, now=utcnow() + dt.timedelta(hours=2)) is None
        assert repo.revoke_api_key(session, key_id=key[:12])
        assert repo.find_api_key(session, key=key) is None
    with pytest.raises(ValueError, match="unknown scope"), db.sessions.begin() as session:
        repo.create_api_key(session, name="x", scopes=["root"])


def test_idempotency_keys_are_per_owner(db: Database) -> None:
    with db.sessions.begin() as session:
        alice = repo.create_owner(session, kind=OwnerKind.SESSION).id
        bob = repo.create_owner(session, kind=OwnerKind.SESSION).id
    payload = {"seconds": 1}
    with db.sessions.begin() as session:
        first, created = repo.create_job(
            session, owner_id=alice, kind="debug.sleep", payload=payload, max_attempts=3, idempotency_key="k1"
        )
        assert created
    with db.sessions.begin() as session:
        again, created = repo.create_job(
            session, owner_id=alice, kind="debug.sleep", payload=payload, max_attempts=3, idempotency_key="k1"
        )
        assert not created and again.id == first.id
        other, created = repo.create_job(
            session, owner_id=bob, kind="debug.sleep", payload=payload, max_attempts=3, idempotency_key="k1"
        )
        assert created and other.id != first.id
    with pytest.raises(repo.IdempotencyConflictError, match="different request"), db.sessions.begin() as session:
        repo.create_job(
            session, owner_id=alice, kind="debug.sleep", payload={"seconds": 2}, max_attempts=3, idempotency_key="k1"
        )
    with db.sessions() as session:
        assert session.scalar(select(Job).where(Job.idempotency_key == "k1", Job.owner_id == alice)) is not None
        assert len(session.scalars(select(Job)).all()) == 2


def test_deleting_a_face_removes_its_images_latents_and_files(db: Database, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    shared_bytes = png_bytes(color=(1, 2, 3))
    with db.sessions.begin() as session:
        owner = repo.create_owner(session, kind=OwnerKind.SESSION).id
        face = repo.create_face(session, owner_id=owner)
        keep = repo.create_face(session, owner_id=owner)
        kw = {"blobs": blobs, "owner_id": owner, "media_type": "image/png", "width": 64, "height": 48}
        photo = repo.create_image(session, data=png_bytes(color=(9, 9, 9)), kind="face_photo", face_id=face.id, **kw)
        shared = repo.create_image(session, data=shared_bytes, kind="face_aligned", face_id=face.id, **kw)
        other = repo.create_image(session, data=shared_bytes, kind="face_photo", face_id=keep.id, **kw)
        latent = repo.store_blob(session, blobs=blobs, data=b"latent bytes", media_type="application/x-npz")
        face.latent_sha256 = latent.sha256
        face_id, photo_sha, shared_sha, latent_sha = face.id, photo.blob_sha256, shared.blob_sha256, latent.sha256
        other_id = other.id
    with db.sessions.begin() as session:
        assert repo.delete_face(session, face_id=face_id, owner_id="someone-else") is None
        dropped = repo.delete_face(session, face_id=face_id, owner_id=owner)
    assert dropped is not None and set(dropped) == {photo_sha, latent_sha}  # The shared bytes stay.
    with db.sessions() as session:
        assert repo.purge_blob_files(session, blobs=blobs, shas=dropped) == 2
        assert repo.face_images(session, face_id=face_id) == []
        assert session.get(Image, other_id) is not None
        assert session.get(Blob, shared_sha) is not None and session.get(Blob, photo_sha) is None
    assert not blobs.exists(photo_sha) and not blobs.exists(latent_sha) and blobs.exists(shared_sha)


def test_claims_leases_and_requeue_of_dead_workers(db: Database) -> None:
    with db.sessions.begin() as session:
        owner = repo.create_owner(session, kind=OwnerKind.SESSION).id
        job, _ = repo.create_job(session, owner_id=owner, kind="debug.sleep", payload={}, max_attempts=2)
        job_id = job.id
    t0 = utcnow()
    with db.sessions.begin() as session:
        token = repo.claim_job(session, job_id=job_id, lease_seconds=10, now=t0)
        assert token is not None
        assert repo.claim_job(session, job_id=job_id, lease_seconds=10, now=t0) is None  # Taken.
        assert repo.heartbeat_job(session, job_id=job_id, claim_token=token, lease_seconds=10, progress=0.5, now=t0)
        assert not repo.heartbeat_job(session, job_id=job_id, claim_token="wrong", lease_seconds=10, now=t0)
    with db.sessions.begin() as session:
        assert repo.requeue_stale_jobs(session, now=t0 + dt.timedelta(seconds=5)) == ([], [])
        assert repo.requeue_stale_jobs(session, now=t0 + dt.timedelta(seconds=11)) == ([job_id], [])
    with db.sessions.begin() as session:
        # The dead worker's token no longer counts: its late result is dropped.
        assert not repo.finish_job(session, job_id=job_id, claim_token=token, result={"late": True})
        token2 = repo.claim_job(session, job_id=job_id, lease_seconds=10, now=t0)
        assert token2 is not None
    with db.sessions.begin() as session:
        # Second (last) try dies too: the job fails with a reason instead of running forever.
        assert repo.requeue_stale_jobs(session, now=t0 + dt.timedelta(seconds=60)) == ([], [job_id])
    with db.sessions() as session:
        job = repo.get_job(session, job_id=job_id)
        assert job is not None and job.status == "failed" and job.attempts == 2
        assert "stopped responding" in (job.error or "")
        assert repo.count_jobs_by_status(session)["failed"] == 1


def test_concurrent_stores_of_the_same_new_bytes_both_succeed(db: Database, tmp_path: Path) -> None:
    """Two transactions store the same not-yet-recorded bytes (two same-seed outfits at once). The
    second has looked for the row (none: the first has not committed) and is about to insert when the
    first commits: it must find the first's row, not fail on the primary key (it did: a 500)."""
    import threading

    from sqlalchemy import event

    blobs = BlobStore(tmp_path / "blobs")
    data = png_bytes(color=(1, 2, 3))
    about_to_insert = threading.Event()

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        inserting = statement.lstrip().upper().startswith("INSERT") and "blobs" in statement
        if inserting and threading.current_thread().name == "second-store":
            about_to_insert.set()

    event.listen(db.engine, "before_cursor_execute", watch)
    result: dict[str, Any] = {}

    def store_second() -> None:
        try:
            with db.sessions.begin() as session:
                result["sha"] = repo.store_blob(session, blobs=blobs, data=data, media_type="image/png").sha256
        except Exception as exc:  # What the old code raised (IntegrityError) is the finding.
            result["error"] = exc

    try:
        with db.sessions() as first:
            row = repo.store_blob(first, blobs=blobs, data=data, media_type="image/png")
            thread = threading.Thread(target=store_second, name="second-store")
            thread.start()
            assert about_to_insert.wait(60), "the second store never reached its insert"
            first.commit()
        thread.join(60)
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert "error" not in result, repr(result.get("error"))
    assert result["sha"] == row.sha256
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
    assert blobs.get(row.sha256) == data


def test_get_owned_returns_only_the_owners_row(db: Database) -> None:
    with db.sessions.begin() as session:
        owner = repo.create_owner(session, kind=OwnerKind.SESSION).id
        other = repo.create_owner(session, kind=OwnerKind.SESSION).id
        face_id = repo.create_face(session, owner_id=owner).id
    with db.sessions() as session:
        found = repo.get_owned(session, Face, face_id, owner_id=owner)
        assert found is not None and found.id == face_id
        assert repo.get_owned(session, Face, face_id, owner_id=other) is None
        assert repo.get_owned(session, Face, "no-such-face", owner_id=owner) is None
        assert repo.get_face(session, face_id=face_id, owner_id=other) is None
