"""Reads and writes of the service database, one keyword-only function per operation.

Functions take an open `Session` and never commit: the caller owns the transaction (a request, a
job step). Ownership is part of every lookup a caller can reach (`owner_id=`): a row of another
owner is simply not found, so the API answers 404 and never reveals that it exists.

Secrets (session tokens, API keys) are returned once in plain text by the function that creates
them and stored only as sha256 digests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tryon.db.blobs import BlobStore
from tryon.db.models import (
    ApiKey,
    Base,
    Blob,
    CatalogFill,
    CatalogItem,
    Edit,
    Face,
    Garment,
    Image,
    Job,
    JobStatus,
    Outfit,
    Owner,
    OwnerKind,
    Product,
    Scope,
    SessionToken,
    TryOn,
    new_id,
    utcnow,
)
from tryon.errors import TooManyRequestsError, TryonError

OwnedT = TypeVar("OwnedT", bound=Base)

SESSION_TOKEN_PREFIX = "tys_"           # Anonymous shopper sessions (Authorization: Bearer ...).
API_KEY_PREFIX = "tyk_"                 # API keys (X-API-Key: ...).
_SHOWN_PREFIX_LENGTH = 12               # Characters of a key kept in clear to tell keys apart.


class IdempotencyConflictError(TryonError):
    """An idempotency key was used again with a different request."""


def token_digest(token: str) -> str:
    """sha256 hex of a secret token: what the database stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


# ----------------------------------------------------------------------------------------------------
# Owners, sessions, API keys.


def create_owner(session: Session, *, kind: OwnerKind, name: str | None = None) -> Owner:
    owner = Owner(id=new_id(), kind=kind.value, name=name, created_at=utcnow())
    session.add(owner)
    session.flush()  # Rows that refer to it are inserted after it (the models declare no relationships).
    return owner


def create_session_token(
    session: Session, *, ttl: dt.timedelta, now: dt.datetime | None = None
) -> tuple[SessionToken, str]:
    """A new anonymous owner and its session. Returns (row, bearer token shown once)."""
    now = now or utcnow()
    owner = create_owner(session, kind=OwnerKind.SESSION)
    token = _new_secret(SESSION_TOKEN_PREFIX)
    row = SessionToken(
        id=new_id(), owner_id=owner.id, token_hash=token_digest(token), created_at=now, expires_at=now + ttl
    )
    session.add(row)
    session.flush()
    return row, token


def find_session(session: Session, *, token: str, now: dt.datetime | None = None) -> SessionToken | None:
    """The live (unexpired) session of a bearer token, or None."""
    now = now or utcnow()
    row = session.scalar(select(SessionToken).where(SessionToken.token_hash == token_digest(token)))
    if row is None or row.expires_at <= now:
        return None
    return row


def parse_scopes(scopes: Iterable[str]) -> list[str]:
    """Validated, de-duplicated scope names in a fixed order; ValueError names the allowed ones."""
    known = [s.value for s in Scope]
    chosen = set()
    for scope in scopes:
        if scope not in known:
            raise ValueError(f"unknown scope {scope!r}; the scopes are: {', '.join(known)}")
        chosen.add(scope)
    if not chosen:
        raise ValueError(f"an API key needs at least one scope ({', '.join(known)})")
    return [s for s in known if s in chosen]


def create_api_key(
    session: Session, *, name: str, scopes: Iterable[str], owner_id: str | None = None
) -> tuple[ApiKey, str]:
    """A new API key (for a new client owner unless `owner_id` is given). Returns (row, key shown once)."""
    scope_list = parse_scopes(scopes)
    if owner_id is None:
        owner_id = create_owner(session, kind=OwnerKind.CLIENT, name=name).id
    key = _new_secret(API_KEY_PREFIX)
    row = ApiKey(
        id=new_id(),
        owner_id=owner_id,
        name=name,
        prefix=key[:_SHOWN_PREFIX_LENGTH],
        key_hash=token_digest(key),
        scopes=" ".join(scope_list),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row, key


def find_api_key(session: Session, *, key: str) -> ApiKey | None:
    """The unrevoked API key row of `key`, or None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == token_digest(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()


def revoke_api_key(session: Session, *, key_id: str) -> bool:
    """Revoke by id or by the shown prefix. False when no live key matches."""
    row = session.scalar(
        select(ApiKey).where(or_(ApiKey.id == key_id, ApiKey.prefix == key_id), ApiKey.revoked_at.is_(None))
    )
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


# ----------------------------------------------------------------------------------------------------
# Blobs and images.


def store_blob(session: Session, *, blobs: BlobStore, data: bytes, media_type: str) -> Blob:
    """Write `data` to the blob store (atomically) and record it. Same bytes, same row.

    Safe when several requests store the same new bytes at once (same outfit seed, same photo): the
    row is inserted-or-ignored, so the second writer waits for the first and then finds its row
    instead of failing on the primary key.
    """
    digest = blobs.put(data)
    row = session.get(Blob, digest)
    if row is None:
        insert_or_ignore(
            session,
            Blob,
            {"sha256": digest, "size": len(data), "media_type": media_type, "created_at": utcnow()},
            key=("sha256",),
        )
        row = session.get(Blob, digest)
        if row is None:  # Only if a concurrent delete removed it between the two statements.
            raise TryonError(f"blob {digest} vanished while it was being stored; try again")
    return row


def insert_or_ignore(session: Session, model: type[Base], values: dict[str, Any], *, key: tuple[str, ...]) -> bool:
    """INSERT `values` into `model`'s table unless a row with the same `key` columns exists (SQLite
    `ON CONFLICT DO NOTHING`, PostgreSQL the same). A concurrent uncommitted insert of that key makes
    this wait for it and then do nothing. True when this call inserted the row."""
    session.flush()
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement: Any = sqlite_insert(model).values(values).on_conflict_do_nothing(index_elements=list(key))
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(model).values(values).on_conflict_do_nothing(index_elements=list(key))
    else:
        raise NotImplementedError(f"insert_or_ignore: no upsert for the {dialect!r} database")
    return _rowcount(session.execute(statement)) == 1


def create_image(
    session: Session,
    *,
    blobs: BlobStore,
    owner_id: str,
    data: bytes,
    media_type: str,
    width: int,
    height: int,
    kind: str,
    face_id: str | None = None,
) -> Image:
    """Store encoded image bytes as a blob and record them as an image of `owner_id`.

    `face_id`: the face this image derives from (deleting the face deletes the image).
    """
    blob = store_blob(session, blobs=blobs, data=data, media_type=media_type)
    image = Image(
        id=new_id(),
        owner_id=owner_id,
        blob_sha256=blob.sha256,
        kind=kind,
        media_type=media_type,
        width=width,
        height=height,
        face_id=face_id,
        created_at=utcnow(),
    )
    session.add(image)
    session.flush()
    return image


def get_image(session: Session, *, image_id: str, owner_id: str) -> Image | None:
    return get_owned(session, Image, image_id, owner_id=owner_id)


def _blob_references() -> list[Any]:
    """Every column that refers to blobs.sha256 (found from the models, so new tables count)."""
    columns = []
    for table in Base.metadata.tables.values():
        for fk in table.foreign_keys:
            if fk.column.table.name == "blobs":
                columns.append(fk.parent)
    return columns


def drop_unreferenced_blobs(session: Session, *, shas: Iterable[str]) -> list[str]:
    """Delete the rows of those blobs nobody refers to any more; returns their digests.

    Call `purge_blob_files` with the result after the transaction commits.
    """
    session.flush()
    dropped = []
    for sha in sorted(set(shas)):
        referenced = any(
            session.scalar(select(func.count()).select_from(col.table).where(col == sha)) for col in _blob_references()
        )
        if not referenced:
            session.execute(delete(Blob).where(Blob.sha256 == sha))
            dropped.append(sha)
    return dropped


def purge_blob_files(session: Session, *, blobs: BlobStore, shas: Iterable[str]) -> int:
    """After a commit: delete the files of dropped blobs that are still unrecorded (the same bytes may
    have been stored again meanwhile). Returns how many files were removed."""
    removed = 0
    for sha in shas:
        if session.get(Blob, sha) is None and blobs.delete(sha):
            removed += 1
    return removed


# ----------------------------------------------------------------------------------------------------
# Owners: deleting everything of one (a shopper leaving, or an expired anonymous session).

# Tables holding an owner's rows, children before the rows they refer to.
OWNED_TABLES: tuple[type[Base], ...] = (
    TryOn, Edit, Garment, CatalogItem, CatalogFill, Product, Outfit, Image, Face, Job, SessionToken, ApiKey,
)


def delete_owner(session: Session, *, owner_id: str) -> list[str] | None:
    """Delete an owner with every row it owns (faces, edits, try-ons, outfits, garments, images, jobs,
    sessions, keys). Returns the digests of blobs nobody refers to any more (pass them to
    `purge_blob_files` after committing), or None when there is no such owner."""
    if session.get(Owner, owner_id) is None:
        return None
    shas: set[str] = set()
    for column in _blob_references():
        owner_column = column.table.c.get("owner_id")
        if owner_column is not None:
            shas.update(s for s in session.scalars(select(column).where(owner_column == owner_id)) if s)
    for model in OWNED_TABLES:
        session.execute(delete(model).where(model.owner_id == owner_id))  # type: ignore[attr-defined]
    session.execute(delete(Owner).where(Owner.id == owner_id))
    return drop_unreferenced_blobs(session, shas=shas)


def expired_session_owners(session: Session, *, before: dt.datetime, limit: int = 100) -> list[str]:
    """Anonymous owners none of whose sessions is valid at `before` (oldest expiry first)."""
    last_expiry = func.max(SessionToken.expires_at)
    rows = session.execute(
        select(Owner.id)
        .join(SessionToken, SessionToken.owner_id == Owner.id)
        .where(Owner.kind == OwnerKind.SESSION.value)
        .group_by(Owner.id)
        .having(last_expiry <= before)
        .order_by(last_expiry)
        .limit(limit)
    )
    return [str(r[0]) for r in rows]


# ----------------------------------------------------------------------------------------------------
# Faces.


def create_face(session: Session, *, owner_id: str, alignment: dict[str, Any] | None = None) -> Face:
    face = Face(id=new_id(), owner_id=owner_id, status="uploaded", alignment=alignment, created_at=utcnow())
    session.add(face)
    session.flush()
    return face


def list_owned(session: Session, model: type[OwnedT], *, owner_id: str, limit: int = 50) -> Sequence[OwnedT]:
    """The owner's rows of `model` (faces, outfits, garments, try-ons...), newest first."""
    table: Any = model
    return session.scalars(
        select(model).where(table.owner_id == owner_id).order_by(table.created_at.desc(), table.id.desc()).limit(limit)
    ).all()


def get_owned(session: Session, model: type[OwnedT], row_id: str, *, owner_id: str) -> OwnedT | None:
    """The owner's row of `model` with that id; None when there is none or another owner has it."""
    table: Any = model
    return session.scalar(select(model).where(table.id == row_id, table.owner_id == owner_id))


def projected_faces(session: Session) -> Sequence[Face]:
    """Every owner's faces that have a latent, oldest first."""
    return session.scalars(
        select(Face).where(Face.latent_sha256.is_not(None)).order_by(Face.created_at, Face.id)
    ).all()


def get_face(session: Session, *, face_id: str, owner_id: str) -> Face | None:
    return get_owned(session, Face, face_id, owner_id=owner_id)


def face_images(session: Session, *, face_id: str) -> Sequence[Image]:
    """Every image derived from the face (its photo, the aligned crop, edits, try-ons, ...)."""
    return session.scalars(select(Image).where(Image.face_id == face_id).order_by(Image.created_at)).all()


def delete_face(session: Session, *, face_id: str, owner_id: str) -> list[str] | None:
    """Delete a face with its edits, try-ons, every image derived from it and its latents.

    Returns the digests of blobs nobody refers to any more (pass them to `purge_blob_files` after
    committing), or None when the owner has no such face.
    """
    face = get_face(session, face_id=face_id, owner_id=owner_id)
    if face is None:
        return None
    # Edits of the owner's other faces that took something from this one (a mix, a composed region),
    # with the try-ons made from them.
    borrowed = [e for e in session.scalars(select(Edit).where(Edit.owner_id == owner_id, Edit.face_id != face_id))
                if face_id in edit_sources(e.params)]
    shas = _delete_edit_rows(session, owner_id=owner_id, edits=borrowed)
    shas.update(session.scalars(select(Image.blob_sha256).where(Image.face_id == face_id)))
    shas.update(s for s in session.scalars(select(Edit.latent_sha256).where(Edit.face_id == face_id)) if s)
    if face.latent_sha256:
        shas.add(face.latent_sha256)
    # Children first, explicitly (the ON DELETE CASCADE of the schema is the safety net).
    session.execute(delete(TryOn).where(TryOn.face_id == face_id))
    session.execute(delete(Edit).where(Edit.face_id == face_id))
    session.execute(delete(Image).where(Image.face_id == face_id))
    session.delete(face)
    return drop_unreferenced_blobs(session, shas=shas)


def delete_edit(session: Session, *, edit_id: str, face_id: str, owner_id: str) -> list[str] | None:
    """Delete an edit of a face, the edits stacked on it (`params["base_edit_id"]`, to any depth), the
    try-ons made from any of them, and their images and latents.

    Returns the digests of blobs nobody refers to any more (for `purge_blob_files` after the commit),
    or None when the owner's face has no such edit.
    """
    edit = get_edit(session, edit_id=edit_id, owner_id=owner_id, face_id=face_id)
    if edit is None:
        return None
    siblings = list_edits(session, face_id=face_id, owner_id=owner_id)
    doomed, grew = {edit.id}, True
    while grew:
        stacked = {e.id for e in siblings if (e.params or {}).get("base_edit_id") in doomed}
        grew = not stacked <= doomed
        doomed |= stacked
    shas = _delete_edit_rows(session, owner_id=owner_id, edits=[e for e in siblings if e.id in doomed])
    return drop_unreferenced_blobs(session, shas=shas)


def _delete_edit_rows(session: Session, *, owner_id: str, edits: Sequence[Edit]) -> set[str]:
    """Delete these edits of the owner with the try-ons made from them and the images of both; returns
    the digests their rows referred to (for `drop_unreferenced_blobs`)."""
    ids = {e.id for e in edits}
    if not ids:
        return set()
    tryons = [t for t in session.scalars(select(TryOn).where(TryOn.owner_id == owner_id))
              if (t.edits or {}).get("edit_id") in ids]
    images = [e.image_id for e in edits if e.image_id] + [t.image_id for t in tryons if t.image_id]
    shas = set(session.scalars(select(Image.blob_sha256).where(Image.id.in_(images))))
    shas.update(e.latent_sha256 for e in edits if e.latent_sha256)
    session.execute(delete(TryOn).where(TryOn.id.in_([t.id for t in tryons])))
    session.execute(delete(Edit).where(Edit.id.in_(ids)))
    session.execute(delete(Image).where(Image.id.in_(images)))
    return shas


def edit_sources(params: dict[str, Any] | None) -> set[str]:
    """The other faces an edit took from: `params["mix"]["face_id"]`, `params["compose"]["face_id"]`,
    and `params["borrowed_from"]` (what the edit it stacks on took)."""
    found = set()
    for key in ("mix", "compose"):
        part = (params or {}).get(key)
        if isinstance(part, dict) and isinstance(part.get("face_id"), str):
            found.add(part["face_id"])
    inherited = (params or {}).get("borrowed_from")
    if isinstance(inherited, list):
        found.update(f for f in inherited if isinstance(f, str))
    return found


# ----------------------------------------------------------------------------------------------------
# Outfits.


def create_outfit(
    session: Session,
    *,
    owner_id: str,
    labels: dict[str, str],
    seed: int,
    truncation: float,
    checkpoint: str,
    image_id: str,
) -> Outfit:
    outfit = Outfit(
        id=new_id(),
        owner_id=owner_id,
        labels=dict(labels),
        seed=seed,
        truncation=truncation,
        checkpoint=checkpoint,
        image_id=image_id,
        created_at=utcnow(),
    )
    session.add(outfit)
    session.flush()
    return outfit


def get_outfit(session: Session, *, outfit_id: str, owner_id: str) -> Outfit | None:
    return get_owned(session, Outfit, outfit_id, owner_id=owner_id)


# ----------------------------------------------------------------------------------------------------
# Jobs.


def request_fingerprint(kind: str, payload: dict[str, Any]) -> str:
    """sha256 of a job request (kind + canonical JSON payload): what an idempotency key stands for."""
    canonical = json.dumps({"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_job(
    session: Session,
    *,
    owner_id: str,
    kind: str,
    payload: dict[str, Any],
    max_attempts: int,
    idempotency_key: str | None = None,
    identity: dict[str, Any] | None = None,
    max_active: int | None = None,
) -> tuple[Job, bool]:
    """Queue a job. Returns (job, created).

    With `max_active`, TooManyJobsError when the owner already has that many queued or running
    jobs (an idempotent replay of an earlier job is still answered). Concurrent submissions of one
    owner are serialised by a write to the owner's row first, so the cap holds under a burst.

    With an idempotency key, the owner's earlier job with that key is returned (created False) when
    the request is the same, and IdempotencyConflictError is raised when it differs. "The same" compares
    kind + payload, or kind + `identity` when given (e.g. the uploaded photo's sha256 when the
    payload holds ids made for this request). Two concurrent
    requests with one key race on a unique constraint: the loser's session is rolled back and the
    winner's job returned, so create keyed jobs before any other write of the transaction.
    """
    fingerprint = request_fingerprint(kind, payload if identity is None else identity)
    if max_active is not None:
        lock_owner(session, owner_id=owner_id)
    if idempotency_key is not None:
        existing = find_job_by_idempotency_key(session, owner_id=owner_id, key=idempotency_key)
        if existing is not None:
            return _same_request(existing, fingerprint, idempotency_key), False
    if max_active is not None:
        check_active_jobs(session, owner_id=owner_id, max_active=max_active)
    now = utcnow()
    job = Job(
        id=new_id(),
        owner_id=owner_id,
        kind=kind,
        status=JobStatus.QUEUED.value,
        progress=0.0,
        payload=payload,
        attempts=0,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        session.rollback()
        existing = find_job_by_idempotency_key(session, owner_id=owner_id, key=idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, fingerprint, idempotency_key), False
    return job, True


class TooManyJobsError(TooManyRequestsError):
    """The owner has as many queued or running jobs as it may have at once."""


ACTIVE_JOBS_RETRY_AFTER_S = 10          # What a refused caller is told to wait (jobs take seconds to minutes).


def lock_owner(session: Session, *, owner_id: str) -> None:
    """Write to the owner's row so that, until this transaction ends, the owner's other writers
    wait: a row lock on PostgreSQL, the database's write lock on SQLite."""
    session.execute(
        update(Owner).where(Owner.id == owner_id).values(kind=Owner.kind).execution_options(synchronize_session=False)
    )


def count_active_jobs(session: Session, *, owner_id: str) -> int:
    """The owner's queued and running jobs."""
    active = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    return int(session.scalar(select(func.count()).where(Job.owner_id == owner_id, Job.status.in_(active))) or 0)


def check_active_jobs(session: Session, *, owner_id: str, max_active: int) -> None:
    """TooManyJobsError when the owner has `max_active` queued or running jobs already."""
    active = count_active_jobs(session, owner_id=owner_id)
    if active >= max_active:
        raise TooManyJobsError(
            f"too many jobs at once: you have {active} queued or running, and at most {max_active} may be; "
            f"wait for one to finish (GET /v1/jobs/{{id}}) and try again",
            retry_after=ACTIVE_JOBS_RETRY_AFTER_S,
        )


def find_job_by_idempotency_key(session: Session, *, owner_id: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key))


def check_same_request(job: Job, *, kind: str, request: dict[str, Any]) -> Job:
    """`job` if it was made by the same request (kind + payload or identity), else IdempotencyConflictError."""
    return _same_request(job, request_fingerprint(kind, request), job.idempotency_key or "")


def _same_request(job: Job, fingerprint: str, key: str) -> Job:
    if job.request_hash != fingerprint:
        raise IdempotencyConflictError(
            f"the idempotency key {key!r} was already used for a different request (job {job.id}); "
            "use a new key for a new request"
        )
    return job


def get_job(session: Session, *, job_id: str, owner_id: str | None = None) -> Job | None:
    """A job by id; with `owner_id`, only that owner's."""
    query = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    return session.scalar(query)


def claim_job(
    session: Session,
    *,
    job_id: str,
    lease_seconds: float,
    token: str | None = None,
    now: dt.datetime | None = None,
) -> str | None:
    """Take a queued job: running, one more attempt, a fresh claim token and a lease.

    token: the claim token to use (32 characters; workers use `tryon.jobs.claims.new_claim_token`,
        which names their host and pid); default a random one.
    Returns the claim token, or None when the job is not queued (already taken, finished, or
    out of attempts). Safe against concurrent workers: one conditional UPDATE decides.
    """
    now = now or utcnow()
    token = token or new_id()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value, Job.attempts < Job.max_attempts)
        .values(
            status=JobStatus.RUNNING.value,
            claim_token=token,
            attempts=Job.attempts + 1,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, now),
            error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return token if _rowcount(result) == 1 else None


def heartbeat_job(
    session: Session,
    *,
    job_id: str,
    claim_token: str,
    lease_seconds: float,
    progress: float | None = None,
    message: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Renew the lease (and record progress 0..1 / a message). False when the claim was lost."""
    now = now or utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + dt.timedelta(seconds=lease_seconds), "updated_at": now}
    if progress is not None:
        values["progress"] = min(max(float(progress), 0.0), 1.0)
    if message is not None:
        values["message"] = message[:500]
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claim_token == claim_token, Job.status == JobStatus.RUNNING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def finish_job(
    session: Session, *, job_id: str, claim_token: str, result: dict[str, Any], now: dt.datetime | None = None
) -> bool:
    """Mark the job succeeded with its result. False when the claim was lost (the result is dropped)."""
    now = now or utcnow()
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claim_token == claim_token, Job.status == JobStatus.RUNNING.value)
        .values(
            status=JobStatus.SUCCEEDED.value,
            progress=1.0,
            result=result,
            error=None,
            claim_token=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(outcome) == 1


def fail_job(
    session: Session,
    *,
    job_id: str,
    claim_token: str,
    error: str,
    retry: bool,
    now: dt.datetime | None = None,
) -> str | None:
    """Record a failed try. With `retry` and attempts left the job is queued again, else it fails.

    Returns the new status ("queued" or "failed"), or None when the claim was lost.
    """
    now = now or utcnow()
    job = session.scalar(select(Job).where(Job.id == job_id, Job.claim_token == claim_token))
    if job is None or job.status != JobStatus.RUNNING.value:
        return None
    again = retry and job.attempts < job.max_attempts
    status = JobStatus.QUEUED if again else JobStatus.FAILED
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claim_token == claim_token, Job.status == JobStatus.RUNNING.value)
        .values(
            status=status.value,
            error=error,
            claim_token=None,
            lease_expires_at=None,
            finished_at=None if again else now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return status.value if _rowcount(outcome) == 1 else None


def running_claim_tokens(session: Session, *, prefix: str) -> list[str]:
    """Claim tokens of the running jobs whose token starts with `prefix` (hex: no LIKE wildcards)."""
    return [
        token
        for token in session.scalars(
            select(Job.claim_token).where(Job.status == JobStatus.RUNNING.value, Job.claim_token.startswith(prefix))
        )
        if token is not None
    ]


def requeue_stale_jobs(
    session: Session, *, dead_claims: Iterable[str] = (), now: dt.datetime | None = None
) -> tuple[list[str], list[str]]:
    """Jobs whose worker died: running with an expired lease, or held by one of `dead_claims` (claim
    tokens of processes known to be gone). Queue them again, or fail those out of tries.

    Returns (requeued ids, failed ids). Safe to run from every worker at once.
    """
    now = now or utcnow()
    gone = Job.lease_expires_at < now
    dead = list(dead_claims)
    if dead:
        gone = or_(gone, Job.claim_token.in_(dead))
    columns = (Job.id, Job.claim_token, Job.attempts, Job.max_attempts)
    stale = session.execute(select(*columns).where(Job.status == JobStatus.RUNNING.value, gone)).all()
    requeued: list[str] = []
    failed: list[str] = []
    for job_id, token, attempts, max_attempts in stale:
        again = attempts < max_attempts
        values: dict[str, Any] = {
            "status": (JobStatus.QUEUED if again else JobStatus.FAILED).value,
            "claim_token": None,
            "lease_expires_at": None,
            "updated_at": now,
        }
        if not again:
            values["error"] = f"the worker running this job stopped responding ({attempts} tries)"
            values["finished_at"] = now
        outcome = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.claim_token == token, Job.status == JobStatus.RUNNING.value)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(outcome) == 1:
            (requeued if again else failed).append(job_id)
    return requeued, failed


def queued_job_ids(session: Session) -> list[str]:
    """Ids of the queued jobs, oldest first."""
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED.value).order_by(Job.created_at)))


def count_jobs_by_status(session: Session) -> dict[str, int]:
    counts = {s.value: 0 for s in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status] = int(count)
    return counts


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# ----------------------------------------------------------------------------------------------------
# Try-ons.


def create_tryon(
    session: Session,
    *,
    owner_id: str,
    face_id: str,
    outfit_id: str | None = None,
    garment_id: str | None = None,
    catalog_id: str | None = None,
    product_id: str | None = None,
    edits: dict[str, Any] | None = None,
) -> TryOn:
    """A try-on row (its image comes later, from the `tryon.render` job)."""
    row = TryOn(
        id=new_id(),
        owner_id=owner_id,
        face_id=face_id,
        outfit_id=outfit_id,
        garment_id=garment_id,
        catalog_id=catalog_id,
        product_id=product_id,
        edits=dict(edits or {}),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def get_tryon(session: Session, *, tryon_id: str, owner_id: str | None = None) -> TryOn | None:
    """A try-on by id; with `owner_id`, only that owner's."""
    query = select(TryOn).where(TryOn.id == tryon_id)
    if owner_id is not None:
        query = query.where(TryOn.owner_id == owner_id)
    return session.scalar(query)


def delete_tryon(session: Session, *, tryon_id: str, owner_id: str) -> list[str] | None:
    """Delete one of the owner's try-ons and its image. Returns the digests of blobs nobody refers to
    any more (for `purge_blob_files` after the commit), or None when the owner has no such try-on."""
    row = get_tryon(session, tryon_id=tryon_id, owner_id=owner_id)
    if row is None:
        return None
    image = session.get(Image, row.image_id) if row.image_id else None
    session.delete(row)
    if image is None:
        return []
    session.delete(image)
    return drop_unreferenced_blobs(session, shas=[image.blob_sha256])


# ----------------------------------------------------------------------------------------------------
# Catalog and garments.

CATALOG_OWNER_NAME = "tryon catalog"    # Owner of the generated catalog's rows and images.


def get_catalog_fill(session: Session, *, checkpoint: str) -> CatalogFill | None:
    return session.get(CatalogFill, checkpoint, populate_existing=True)


def claim_catalog_fill(
    session: Session, *, checkpoint: str, stale_after: dt.timedelta, now: dt.datetime | None = None
) -> CatalogFill | None:
    """Take the job of generating the catalog of `checkpoint`. Returns the claimed fill row (with a
    new catalog owner), or None when another process holds a live claim or the fill is done.

    Commits (the claim must be visible to the others at once). Safe against concurrent callers on
    SQLite and PostgreSQL: the fill's primary key decides; a claim older than `stale_after` (its
    process died) is taken over by one conditional UPDATE.
    """
    now = now or utcnow()
    if get_catalog_fill(session, checkpoint=checkpoint) is None:
        owner = create_owner(session, kind=OwnerKind.CLIENT, name=CATALOG_OWNER_NAME)
        fill = CatalogFill(checkpoint=checkpoint, status="filling", owner_id=owner.id, items=0, claimed_at=now)
        session.add(fill)
        try:
            session.commit()
            return fill
        except IntegrityError:  # Another process claimed it first.
            session.rollback()
    result = session.execute(
        update(CatalogFill)
        .where(
            CatalogFill.checkpoint == checkpoint,
            CatalogFill.status == "filling",
            CatalogFill.claimed_at < now - stale_after,
        )
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if _rowcount(result) == 1:
        return get_catalog_fill(session, checkpoint=checkpoint)
    return None


def finish_catalog_fill(session: Session, *, checkpoint: str, items: int, now: dt.datetime | None = None) -> None:
    session.execute(
        update(CatalogFill)
        .where(CatalogFill.checkpoint == checkpoint)
        .values(status="done", items=items, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def add_catalog_item(
    session: Session,
    *,
    owner_id: str,
    name: str,
    source: str,
    labels: dict[str, str],
    fields: dict[str, str | None],
    image_id: str,
    seed: int | None = None,
    truncation: float | None = None,
    params: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    outfit_id: str | None = None,
    latent_sha256: str | None = None,
    slot: str | None = None,
    position: int = 0,
) -> CatalogItem:
    """A catalog item. `fields`: the friendly values {"category", "colour", "gender", "view"} (filters)."""
    item = CatalogItem(
        id=new_id(),
        owner_id=owner_id,
        name=name,
        source=source,
        slot=slot,
        position=position,
        labels=dict(labels),
        category=fields.get("category"),
        colour=fields.get("colour"),
        gender=fields.get("gender"),
        view=fields.get("view"),
        seed=seed,
        truncation=truncation,
        params=params,
        checkpoint=checkpoint,
        image_id=image_id,
        outfit_id=outfit_id,
        latent_sha256=latent_sha256,
        created_at=utcnow(),
    )
    session.add(item)
    session.flush()
    return item


def list_catalog_items(
    session: Session,
    *,
    category: str | None = None,
    colour: str | None = None,
    gender: str | None = None,
    view: str | None = None,
    source: str | None = None,
    offset: int = 0,
    limit: int = 24,
) -> tuple[Sequence[CatalogItem], int]:
    """Catalog items matching the filters (values compared case-insensitively), generated items in
    their catalog order first, then designers' newest first. Returns (page, total)."""
    conditions = []
    for column, value in (
        (CatalogItem.category, category),
        (CatalogItem.colour, colour),
        (CatalogItem.gender, gender),
        (CatalogItem.view, view),
    ):
        if value is not None:
            conditions.append(func.lower(column) == value.lower())
    if source is not None:
        conditions.append(CatalogItem.source == source)
    total = int(session.scalar(select(func.count()).select_from(CatalogItem).where(*conditions)) or 0)
    rows = session.scalars(
        select(CatalogItem)
        .where(*conditions)
        .order_by(CatalogItem.source.desc(), CatalogItem.position, CatalogItem.created_at.desc(), CatalogItem.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return rows, total


CATALOG_FACETS = ("category", "colour", "gender", "view")  # CatalogItem columns a shopper filters by.


def catalog_facets(session: Session, *, source: str | None = None, **filters: str | None) -> dict[str, dict[str, int]]:
    """For each filter field (CATALOG_FACETS), how many items each of its values holds among the items
    that match the other filters (values compared case-insensitively): {field: {value: count}}, the
    values as stored. What a shop's filters can say ("blue (12)") and leave out (0 items)."""
    unknown = set(filters) - set(CATALOG_FACETS)
    if unknown:
        raise ValueError(f"no catalog filter {sorted(unknown)}")
    out: dict[str, dict[str, int]] = {}
    for field in CATALOG_FACETS:
        column = getattr(CatalogItem, field)
        conditions = [
            func.lower(getattr(CatalogItem, other)) == value.lower()
            for other, value in filters.items()
            if value is not None and other != field
        ]
        if source is not None:
            conditions.append(CatalogItem.source == source)
        rows = session.execute(
            select(column, func.count()).where(*conditions, column.is_not(None)).group_by(column)
        ).all()
        out[field] = {str(value): int(n) for value, n in rows}
    return out


def get_catalog_item(session: Session, *, item_id: str) -> CatalogItem | None:
    """A catalog item by id (the catalog is shared: no owner filter)."""
    return session.get(CatalogItem, item_id)


def get_image_any_owner(session: Session, *, image_id: str) -> Image | None:
    """An image by id whoever owns it: only for images the caller may see through a shared row
    (a catalog item's image)."""
    return session.get(Image, image_id)


def create_garment(session: Session, *, owner_id: str, photo_image_id: str) -> Garment:
    garment = Garment(
        id=new_id(), owner_id=owner_id, status="uploaded", photo_image_id=photo_image_id, created_at=utcnow()
    )
    session.add(garment)
    session.flush()
    return garment


def get_garment(session: Session, *, garment_id: str, owner_id: str) -> Garment | None:
    return get_owned(session, Garment, garment_id, owner_id=owner_id)


# ----------------------------------------------------------------------------------------------------
# Face edits.


def create_edit(
    session: Session,
    *,
    owner_id: str,
    face_id: str,
    params: dict[str, Any],
    image_id: str | None,
    latent_sha256: str | None,
    job_id: str | None = None,
) -> Edit:
    """Record an edit of a face: its parameters (strengths, instruction, keep, mix, compose), rendered
    image and latent (None until its job, if any, succeeds)."""
    edit = Edit(
        id=new_id(),
        owner_id=owner_id,
        face_id=face_id,
        params=params,
        image_id=image_id,
        latent_sha256=latent_sha256,
        job_id=job_id,
        created_at=utcnow(),
    )
    session.add(edit)
    session.flush()
    return edit


def get_edit(session: Session, *, edit_id: str, owner_id: str, face_id: str | None = None) -> Edit | None:
    """One of the owner's edits; with `face_id`, only an edit of that face."""
    query = select(Edit).where(Edit.id == edit_id, Edit.owner_id == owner_id)
    if face_id is not None:
        query = query.where(Edit.face_id == face_id)
    return session.scalar(query)


def list_edits(session: Session, *, face_id: str, owner_id: str) -> Sequence[Edit]:
    """The owner's edits of a face, oldest first."""
    return session.scalars(
        select(Edit).where(Edit.face_id == face_id, Edit.owner_id == owner_id).order_by(Edit.created_at, Edit.id)
    ).all()


# ----------------------------------------------------------------------------------------------------
# Shop products (since 0004).


def find_product(session: Session, *, owner_id: str, shop_product_id: str) -> Product | None:
    """The shop's product by the shop's own id (locked for update on PostgreSQL: an import replaces it)."""
    return session.scalar(
        select(Product)
        .where(Product.owner_id == owner_id, Product.shop_product_id == shop_product_id)
        .with_for_update()
    )


def upsert_product(
    session: Session,
    *,
    owner_id: str,
    shop_product_id: str,
    name: str,
    attributes: dict[str, Any],
    labels: dict[str, str],
    fields: dict[str, str],
    photo_image_id: str,
    image_id: str,
    prep: dict[str, Any],
) -> tuple[Product, bool, list[str]]:
    """Insert the shop's product, or update the row with the same (owner, shop product id).

    Returns (row, created, dropped blob digests): the images an update replaces are deleted, and the
    digests of blobs nobody refers to any more are for `purge_blob_files` after the commit. A
    concurrent first insert of the same id raises IntegrityError (the caller retries: it then updates).
    """
    now = utcnow()
    values = {
        "name": name,
        "attributes": dict(attributes),
        "labels": dict(labels),
        "category": fields["category"],
        "colour": fields["colour"],
        "gender": fields["gender"],
        "view": fields["view"],
        "photo_image_id": photo_image_id,
        "image_id": image_id,
        "prep": dict(prep),
        "updated_at": now,
    }
    row = find_product(session, owner_id=owner_id, shop_product_id=shop_product_id)
    if row is None:
        row = Product(id=new_id(), owner_id=owner_id, shop_product_id=shop_product_id, created_at=now, **values)
        session.add(row)
        session.flush()
        return row, True, []
    old_images = {row.photo_image_id, row.image_id} - {photo_image_id, image_id}
    for key, value in values.items():
        setattr(row, key, value)
    session.flush()
    return row, False, _delete_images(session, image_ids=old_images)


def _delete_images(session: Session, *, image_ids: Iterable[str]) -> list[str]:
    """Delete image rows; returns the digests of blobs nobody refers to any more."""
    ids = list(image_ids)
    if not ids:
        return []
    shas = set(session.scalars(select(Image.blob_sha256).where(Image.id.in_(ids))))
    session.execute(delete(Image).where(Image.id.in_(ids)))
    return drop_unreferenced_blobs(session, shas=shas)


def get_product(session: Session, *, product_id: str, owner_id: str | None = None) -> Product | None:
    """A product by our id; `owner_id` limits it to that shop's (None: products are public)."""
    conditions = [Product.id == product_id]
    if owner_id is not None:
        conditions.append(Product.owner_id == owner_id)
    return session.scalar(select(Product).where(*conditions))


def list_products(
    session: Session,
    *,
    owner_id: str | None = None,
    category: str | None = None,
    colour: str | None = None,
    gender: str | None = None,
    view: str | None = None,
    offset: int = 0,
    limit: int = 24,
) -> tuple[Sequence[Product], int]:
    """Products matching the filters (case-insensitive), the shop's own when `owner_id` is given,
    newest import first. Returns (page, total)."""
    conditions = []
    if owner_id is not None:
        conditions.append(Product.owner_id == owner_id)
    for column, value in (
        (Product.category, category),
        (Product.colour, colour),
        (Product.gender, gender),
        (Product.view, view),
    ):
        if value is not None:
            conditions.append(func.lower(column) == value.lower())
    total = int(session.scalar(select(func.count()).select_from(Product).where(*conditions)) or 0)
    rows = session.scalars(
        select(Product)
        .where(*conditions)
        .order_by(Product.created_at.desc(), Product.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return rows, total


def count_products(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Product)) or 0)


def delete_product(session: Session, *, product_id: str, owner_id: str) -> list[str] | None:
    """Delete the shop's product and its two images. Returns the digests of blobs nobody refers to
    any more (for `purge_blob_files` after the commit), or None when the shop has no such product.
    Try-ons of it keep their images (their `product_id` becomes NULL)."""
    row = get_product(session, product_id=product_id, owner_id=owner_id)
    if row is None:
        return None
    images = {row.photo_image_id, row.image_id}
    session.execute(update(TryOn).where(TryOn.product_id == row.id).values(product_id=None))
    session.delete(row)
    session.flush()
    return _delete_images(session, image_ids=images)
