"""Retention of anonymous shoppers' data.

An anonymous session (POST /v1/sessions) owns the photos it uploads and everything made from them.
Once its token has expired nobody can reach that data any more, so it is deleted
`session_data_grace_hours` later by a sweep that every API process runs every
`retention_sweep_minutes` (deleting is idempotent: two processes sweeping at once is harmless).
A shopper can also delete everything at once: DELETE /v1/sessions/current.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.models import utcnow

log = logging.getLogger(__name__)


def delete_owner_data(database: Database, blobs: BlobStore, owner_id: str) -> bool:
    """Delete an owner and everything it owns, blob files included. False when there is no such owner."""
    with database.sessions.begin() as session:
        dropped = repo.delete_owner(session, owner_id=owner_id)
    if dropped is None:
        return False
    with database.sessions() as session:
        repo.purge_blob_files(session, blobs=blobs, shas=dropped)
    return True


def purge_expired_sessions(
    database: Database,
    blobs: BlobStore,
    *,
    grace: dt.timedelta,                # How long after its last session expired an owner's data is kept.
    now: dt.datetime | None = None,
    limit: int = 100,                   # Owners per call.
) -> int:
    """Delete the data of anonymous owners whose sessions all expired more than `grace` ago.
    Returns how many owners were deleted."""
    before = (now or utcnow()) - grace
    with database.sessions() as session:
        owners = repo.expired_session_owners(session, before=before, limit=limit)
    deleted = sum(delete_owner_data(database, blobs, owner_id) for owner_id in owners)
    if deleted:
        log.info("retention: deleted the data of %d expired anonymous session(s)", deleted)
    return deleted


class RetentionSweeper:
    """Runs `purge_expired_sessions` at start and then every `interval_s` seconds in a daemon thread."""

    def __init__(self, database: Database, blobs: BlobStore, *, grace: dt.timedelta, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.database, self.blobs, self.grace, self.interval_s = database, blobs, grace, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retention-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                while purge_expired_sessions(self.database, self.blobs, grace=self.grace) and not self._stop.is_set():
                    pass                # A full batch: there may be more.
            except Exception:           # A database hiccup: try again next time.
                log.exception("retention: the sweep failed")
            if self._stop.wait(self.interval_s):
                return
