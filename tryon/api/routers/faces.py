"""POST /v1/faces (upload a face photo), GET and DELETE /v1/faces/{id}.

An upload is checked in this order, each with its own status: the body size (413, before it is
read), an empty file (400), the file signature against the allow-list JPEG / PNG / WebP (415), the
pixel count from the header before decoding (413), decoding (400 for a truncated or corrupt file),
then face alignment (422 when there is no face, and when there are several and the upload did not
say which one with `face`: the 422 lists them with their boxes, so that the caller can ask which one
is meant and send the photo again with its index). The photo is stored upright (EXIF applied) and
without its metadata (no GPS, no camera serial), with the aligned face beside it twice: at 256 px
(what is projected) and at the photo's own resolution, up to 512 px (kind "face_aligned_hr": the face
a try-on shows, the edits applied to it). Deleting the face deletes all three.

When a face projection pipeline is installed (job kind "face.project"), the upload also queues its
projection job; `Idempotency-Key` then makes a retried upload return the first face. Once projected,
the face is usable at once; its projection queues a refinement (pivotal tuning, "face.refine"), and
`refinement` says where that stands: "pending", "done" (later edits and try-ons use the tuned
generator), "failed" (the fast projection stays in use) or null (none queued).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile, status
from sqlalchemy.orm import Session

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.idempotency import replayed
from tryon.api.rows import finish_deletion
from tryon.api.schemas import FaceChoiceErrorPublic, FacePublic, FoundFacePublic, JobPublic, image_public
from tryon.api.uploads import NON_EMPTY_FILE, decode_upload, read_upload
from tryon.db import repositories as repo
from tryon.db.blobs import sha256_hex
from tryon.db.models import Face, ImageKind, Job, JobKind, JobStatus
from tryon.services.status import resource_status
from tryon.services.storage import save_image

if TYPE_CHECKING:
    from tryon.face.align import AlignedFace

router = APIRouter(prefix="/v1", tags=["faces"])

FACE_PREVIEW_SIDE = 1024                # Side of the cheap preview that must show a face first, px.
MAX_FACE_INDEX = 99                     # The most faces an upload can choose among.


def refinement_status(job: Job | None) -> str | None:
    """The face's refinement as its owner sees it: "pending", "done", "failed", None = none queued."""
    if job is None:
        return None
    return {JobStatus.SUCCEEDED.value: "done", JobStatus.FAILED.value: "failed"}.get(job.status, "pending")


def refinement_job(session: Session, face: Face) -> Job | None:
    """The `face.refine` job its current projection queued (found by its key), if any."""
    from tryon.services.face import refine_job_key

    if face.projection_job_id is None:
        return None
    return repo.find_job_by_idempotency_key(session, owner_id=face.owner_id, key=refine_job_key(face.projection_job_id))


def _face_public(session: Session, face: Face) -> FacePublic:
    images = repo.face_images(session, face_id=face.id)
    by_kind = {img.kind: img for img in images}
    alignment = face.alignment or {}
    found = alignment.get("faces_found")
    index = alignment.get("face_index", 0)
    note = None
    if isinstance(found, int) and found > 1:
        which = "the largest" if index == 0 else f"face {index}, as asked"
        note = f"{found} faces were found in the photo; {which} was used."
    job = repo.get_job(session, job_id=face.projection_job_id) if face.projection_job_id else None
    refine = refinement_job(session, face)
    return FacePublic(
        id=face.id,
        status=resource_status(face, job),
        photo=image_public(by_kind[ImageKind.FACE_PHOTO]) if ImageKind.FACE_PHOTO in by_kind else None,
        aligned=image_public(by_kind[ImageKind.FACE_ALIGNED]) if ImageKind.FACE_ALIGNED in by_kind else None,
        images=[image_public(img) for img in images],
        faces_found=found if isinstance(found, int) else None,
        face_index=index if isinstance(found, int) and isinstance(index, int) else None,
        note=note,
        projection_job=JobPublic.model_validate(job) if job is not None else None,
        refinement=refinement_status(refine),
        refinement_job=JobPublic.model_validate(refine) if refine is not None else None,
        reconstruction=(
            image_public(by_kind[ImageKind.FACE_RECONSTRUCTION]) if ImageKind.FACE_RECONSTRUCTION in by_kind else None
        ),
        created_at=face.created_at,
    )


@router.post(
    "/faces",
    status_code=status.HTTP_201_CREATED,
    response_model=FacePublic,
    responses={
        200: {"model": FacePublic, "description": "Same Idempotency-Key: the first upload's face"},
        **error_docs(400, 401, 403, 409, 413, 415, 429),
        422: {
            "model": FaceChoiceErrorPublic,
            "description": "No face in the photo; or several, and `face` did not say which (`faces` lists them)",
        },
    },
)
def upload_face(
    file: Annotated[
        UploadFile, File(description="A photo with a face: JPEG, PNG or WebP.", json_schema_extra=NON_EMPTY_FILE)
    ],
    principal: ShopperDep,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    which_face: Annotated[
        int | None,
        Form(alias="face", ge=0, le=MAX_FACE_INDEX,
             description="Which face of a photo with several (the `index` the 422 listed; 0 = the largest)."),
    ] = None,
) -> FacePublic:
    """Upload a face photo. The caller owns it; it is kept until `DELETE /v1/faces/{id}`.

    A photo with several faces is refused (422) unless `face` says which one: the refusal lists the
    faces, largest first, with their boxes in the upright photo's pixels."""
    from tryon.face.align import ALIGN_RES, align_face, photo_res, realign, require_a_face

    name = f"the upload {file.filename!r}" if file.filename else "the upload"
    data = read_upload(file, runtime.settings.max_upload_bytes)
    photo_sha = sha256_hex(data)
    project = JobKind.FACE_PROJECT in runtime.registry
    identity = _upload_identity(photo_sha, which_face)
    earlier = replayed(session, owner_id=principal.owner_id, key=idempotency_key if project else None,
                       kind=JobKind.FACE_PROJECT, request=identity, field="face_id", what="a face",
                       load=lambda i: repo.get_face(session, face_id=i, owner_id=principal.owner_id))
    if earlier is not None:
        response.status_code = status.HTTP_200_OK
        return _face_public(session, earlier)
    session.rollback()
    if project:
        runtime.queue.check_room(principal.owner_id)  # 429 before any work when enough jobs are running.

    # A photo without a face is refused on a cheap preview (a blank 7000x5700 JPEG took 3.4 s to refuse
    # when it was decoded in full first); the alignment then uses the full photo.
    preview = decode_upload(data, name=name, runtime=runtime, max_side=FACE_PREVIEW_SIDE)
    require_a_face(preview)  # NoFaceError -> 422.
    image = preview if max(preview.size) < FACE_PREVIEW_SIDE else decode_upload(data, name=name, runtime=runtime)
    faces = align_face(image, ALIGN_RES, which="all")
    best = faces[chosen_face(faces, which_face, photo_size=image.size)]
    alignment = {
        "faces_found": len(faces),
        "face_index": which_face or 0,
        "res": ALIGN_RES,
        "score": round(float(best.score), 4),
        "coverage": round(float(best.coverage), 4),
        "quad": [[round(float(v), 2) for v in p] for p in best.quad],
        "eyes": [[round(float(v), 2) for v in p] for p in best.eyes],
        "photo_size": list(image.size),
        "photo_res": photo_res(best),
    }
    face = repo.create_face(session, owner_id=principal.owner_id, alignment=alignment)
    save_image(
        session, blobs=runtime.blobs, owner_id=principal.owner_id, image=image, kind=ImageKind.FACE_PHOTO,
        face_id=face.id,
    )
    save_image(
        session,
        blobs=runtime.blobs,
        owner_id=principal.owner_id,
        image=best.image,
        kind=ImageKind.FACE_ALIGNED,
        face_id=face.id,
    )
    save_image(
        session,
        blobs=runtime.blobs,
        owner_id=principal.owner_id,
        image=realign(image, best, photo_res(best)),
        kind=ImageKind.FACE_ALIGNED_HR,
        face_id=face.id,
    )
    session.commit()
    if project:
        job, _ = runtime.queue.submit(
            owner_id=principal.owner_id,
            kind=JobKind.FACE_PROJECT,
            payload={"face_id": face.id, "photo_sha256": photo_sha},
            idempotency_key=idempotency_key,
            identity=identity,
        )
        face.projection_job_id = job.id
        face.status = "projecting"
        session.add(face)
        session.commit()
    return _face_public(session, face)


def _upload_identity(photo_sha: str, face: int | None) -> dict[str, Any]:
    """What makes two uploads the same request (for Idempotency-Key)."""
    return {"photo_sha256": photo_sha} if face is None else {"photo_sha256": photo_sha, "face": face}


def chosen_face(faces: list[AlignedFace], face: int | None, *, photo_size: tuple[int, int]) -> int:
    """The index of the face to use among `faces` (largest first): `face` when given and present, the
    only one when there is one; otherwise a 422 that lists them (`FaceChoiceErrorPublic`)."""
    if face is None and len(faces) == 1:
        return 0
    if face is not None and face < len(faces):
        return face
    found = [
        FoundFacePublic(
            index=i,
            box=[round(float(v), 1) for v in (*f.landmarks.min(axis=0), *f.landmarks.max(axis=0))],
            score=round(float(f.score), 3),
        ).model_dump()
        for i, f in enumerate(faces)
    ]
    extra: dict[str, Any] = {"faces": found, "photo_width": photo_size[0], "photo_height": photo_size[1]}
    if face is None:
        detail = (f"{len(faces)} faces were found in the photo: say which one is you (send the photo again with "
                  f"`face` = its index, 0 = the largest), or upload a photo that shows only you")
    else:
        detail = f"face {face} was asked for, but the photo shows {len(faces)} (indices 0 to {len(faces) - 1})"
    raise ApiError(422, detail, **extra)


@router.get("/faces", response_model=list[FacePublic], responses=error_docs(401, 403))
def list_faces(
    principal: ShopperDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[FacePublic]:
    """The caller's faces, newest first (at most `limit`)."""
    return [_face_public(session, f) for f in repo.list_owned(session, Face, owner_id=principal.owner_id, limit=limit)]


@router.get("/faces/{face_id}", response_model=FacePublic, responses=error_docs(401, 403, 404))
def get_face(face_id: str, principal: ShopperDep, session: SessionDep) -> FacePublic:
    """One of the caller's faces, with every image derived from it and its projection job."""
    face = repo.get_face(session, face_id=face_id, owner_id=principal.owner_id)
    if face is None:
        raise not_found("face", face_id)
    return _face_public(session, face)


@router.delete("/faces/{face_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404))
def delete_face(face_id: str, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep) -> None:
    """Delete the face: its photo, its latents, its edits and try-ons, and every image derived from it."""
    dropped = repo.delete_face(session, face_id=face_id, owner_id=principal.owner_id)
    finish_deletion(session, blobs=runtime.blobs, dropped=dropped, what="face", row_id=face_id)
