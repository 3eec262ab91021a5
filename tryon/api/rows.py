"""Row helpers that several routers share: what answers 404 / 409 for a caller's rows, and the end
of a delete. HTTP only: the work is `tryon.services`' and `tryon.db.repositories`'."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tryon.api.errors import ApiError, not_found
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.models import Edit, Face
from tryon.services.status import resource_status


def finish_deletion(session: Session, *, blobs: BlobStore, dropped: list[str] | None, what: str, row_id: str) -> None:
    """After a repository delete: 404 when there was no such row (`dropped` is None), else commit and
    remove the files of the blobs nobody refers to any more."""
    if dropped is None:
        raise not_found(what, row_id)
    session.commit()
    repo.purge_blob_files(session, blobs=blobs, shas=dropped)


def projected_face(session: Session, face_id: str, owner_id: str) -> Face:
    """One of the owner's faces that has a latent: 404 when not theirs, 409 until it is projected (saying
    to upload the photo again when its projection failed)."""
    face = repo.get_face(session, face_id=face_id, owner_id=owner_id)
    if face is None:
        raise not_found("face", face_id)
    if face.latent_sha256 is None:
        job = repo.get_job(session, job_id=face.projection_job_id) if face.projection_job_id else None
        state = resource_status(face, job)
        if state == "failed":
            raise ApiError(409, f"face {face_id!r} could not be projected (status 'failed'): upload the photo again")
        raise ApiError(409, f"face {face_id!r} is not projected yet (status {state!r}): wait for its projection "
                            "job (GET /v1/jobs/{id} of the face's projection_job) to succeed")
    return face


def made_edit(session: Session, edit_id: str, face: Face) -> Edit:
    """One of the edits of `face` (its owner's) that has a latent: 404 when not an edit of that face,
    409 while a composition is still being made or after it failed."""
    edit = repo.get_edit(session, edit_id=edit_id, owner_id=face.owner_id, face_id=face.id)
    if edit is None:
        raise not_found(f"edit of face {face.id}", edit_id)
    if edit.latent_sha256 is None:
        raise ApiError(409, f"the edit {edit_id} is not made yet (a composition still running, or failed)")
    return edit
