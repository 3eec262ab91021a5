"""Row helpers that several routers share: what answers 404 / 409 for a caller's rows, and the end
of a delete. HTTP only: the work is `tryon.services`' and `tryon.db.repositories`'."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tryon.api.errors import not_found
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore


def finish_deletion(session: Session, *, blobs: BlobStore, dropped: list[str] | None, what: str, row_id: str) -> None:
    """After a repository delete: 404 when there was no such row (`dropped` is None), else commit and
    remove the files of the blobs nobody refers to any more."""
    if dropped is None:
        raise not_found(what, row_id)
    session.commit()
    repo.purge_blob_files(session, blobs=blobs, shas=dropped)
