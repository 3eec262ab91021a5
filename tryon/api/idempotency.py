"""Replaying a request that carries an Idempotency-Key already used by the same owner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from tryon.api.errors import ApiError
from tryon.db import repositories as repo

T = TypeVar("T")


def replayed(
    session: Session,
    *,
    owner_id: str,
    key: str | None,
    kind: str,
    request: dict[str, Any],
    field: str,
    load: Callable[[str], T | None],
    what: str,
) -> T | None:
    """The row the first request with this key made, or None for a key not used yet (or no key).

    kind, request: the job kind and identity of this request; a key used for another request is a
        409 (IdempotencyConflictError). field: the job payload's id of the row; load: that id -> the
        owner's row or None; what: the row in words ("a face") for the 409 when it was deleted since.
    """
    if not key:
        return None
    earlier = repo.find_job_by_idempotency_key(session, owner_id=owner_id, key=key)
    if earlier is None:
        return None
    repo.check_same_request(earlier, kind=kind, request=request)
    row_id = earlier.payload.get(field)
    row = load(str(row_id)) if row_id else None
    if row is None:
        raise ApiError(409, f"the idempotency key {key!r} belongs to {what} that was deleted")
    return row
