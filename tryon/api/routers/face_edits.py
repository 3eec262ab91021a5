"""Face edits: GET /v1/edits/directions, POST and GET /v1/faces/{id}/edits.

An edit moves the face's projected latent (faces.latent_sha256, written by the `face.project` job)
along fitted directions (tryon.face.edits) and renders it. The rendering is stored as an image of
kind "face_edit" carrying the face's id, and the edited latent as a blob, both referenced by an
`edits` row: deleting the face deletes them. Rendering takes tens of milliseconds on a CPU, so
edits answer directly (201), without a job.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.records import save_image
from tryon.api.routers.faces import face_status
from tryon.api.runtime import Runtime
from tryon.api.schemas import EditCreate, EditDirectionPublic, EditDirectionsPublic, EditPublic, image_public
from tryon.db import repositories as repo
from tryon.db.models import Edit, Face

router = APIRouter(prefix="/v1", tags=["faces"])

EDIT_IMAGE_KIND = "face_edit"
LATENT_MEDIA_TYPE = "application/x-npz"


def face_models(runtime: Runtime) -> Any:
    """The process's face models (A1's FaceService in the job environment, loaded once)."""
    from tryon.api.face import face_service

    return face_service(runtime.queue.env).models()


@router.get("/edits/directions", response_model=EditDirectionsPublic, responses=error_docs(503))
def get_directions(runtime: RuntimeDep) -> EditDirectionsPublic:
    """The named edits a face takes (`POST /v1/faces/{id}/edits`): ranges, units, and the words an
    instruction may use. Unlabelled SeFa / GANSpace components are left out."""
    from tryon.face.directions import describe_layers, layer_groups
    from tryon.face.edits import EDIT_NAMES, face_directions
    from tryon.face.instructions import instruction_words

    dset = face_directions(face_models(runtime))
    return EditDirectionsPublic(
        directions=[
            EditDirectionPublic(
                name=d.name,
                range=[d.range[0], d.range[1]],
                description=d.description,
                unit=d.unit,
                kind=d.kind,
                layers=describe_layers(d.layers, dset.num_ws),
            )
            for d in dset.directions.values()
            if d.name in EDIT_NAMES
        ],
        instruction_words=instruction_words(),
        layer_groups={k: list(v) for k, v in layer_groups(dset.num_ws).items()},
    )


def _edit_public(session: Session, edit: Edit) -> EditPublic:
    image = repo.get_image(session, image_id=edit.image_id, owner_id=edit.owner_id) if edit.image_id else None
    params = edit.params or {}
    return EditPublic(
        id=edit.id,
        face_id=edit.face_id,
        strengths=dict(params.get("strengths") or {}),
        instruction=params.get("instruction"),
        keep=list(params.get("keep") or []),
        mix=params.get("mix"),
        image=image_public(image) if image is not None else None,
        created_at=edit.created_at,
    )


def _owned_face(session: Session, face_id: str, owner_id: str) -> Face:
    face = repo.get_face(session, face_id=face_id, owner_id=owner_id)
    if face is None:
        raise not_found("face", face_id)
    return face


def _projected_latent_sha(session: Session, face_id: str, owner_id: str) -> str:
    """The latent blob of one of the owner's faces: 404 when not theirs, 409 until it is projected."""
    face = _owned_face(session, face_id, owner_id)
    if face.latent_sha256 is None:
        job = repo.get_job(session, job_id=face.projection_job_id) if face.projection_job_id else None
        state = face_status(face, job)
        if state == "failed":
            raise ApiError(409, f"face {face_id!r} could not be projected (status 'failed'): upload the photo again")
        raise ApiError(409, f"face {face_id!r} is not projected yet (status {state!r}): wait for its projection "
                            "job (GET /v1/jobs/{id} of the face's projection_job) to succeed")
    return face.latent_sha256


@router.post(
    "/faces/{face_id}/edits",
    status_code=status.HTTP_201_CREATED,
    response_model=EditPublic,
    responses=error_docs(400, 401, 403, 404, 409, 503),
)
def create_edit(
    face_id: str, body: EditCreate, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep
) -> EditPublic:
    """Edit one of the caller's projected faces (409 until its projection job has finished): mix in
    layer groups of another of their projected faces (`mix`), then move it along named directions."""
    from tryon.face.edits import edit_latent
    from tryon.face.latent import FaceLatent
    from tryon.face.mixing import mix_styles
    from tryon.face.models import render_face

    latent_sha = _projected_latent_sha(session, face_id, principal.owner_id)
    other_sha = _projected_latent_sha(session, body.mix.face_id, principal.owner_id) if body.mix else None
    session.rollback()                  # No transaction stays open while the face renders.
    if not body.strengths and not (body.instruction and body.instruction.strip()) and body.mix is None:
        raise ApiError(400, "nothing to edit: give strengths (e.g. {\"age\": 10}), an instruction or a mix")

    models = face_models(runtime)
    latent = FaceLatent.from_bytes(runtime.blobs.get(latent_sha), name="the face's latent")
    params: dict[str, Any] = {"instruction": body.instruction, "keep": body.keep}
    if body.mix is not None and other_sha is not None:
        other = FaceLatent.from_bytes(runtime.blobs.get(other_sha), name="the mixed face's latent")
        latent = mix_styles(latent, other, groups=body.mix.groups)
        params["mix"] = body.mix.model_dump(mode="json")
    edited = edit_latent(models, latent, body.strengths, body.instruction, keep=body.keep)
    image = render_face(models, edited)
    params["strengths"] = edited.meta["edits"][-1]["strengths"]

    face = _owned_face(session, face_id, principal.owner_id)  # Still there?
    blob = repo.store_blob(session, blobs=runtime.blobs, data=edited.to_bytes(), media_type=LATENT_MEDIA_TYPE)
    stored = save_image(session, blobs=runtime.blobs, owner_id=principal.owner_id, image=image,
                        kind=EDIT_IMAGE_KIND, face_id=face.id)
    edit = repo.create_edit(session, owner_id=principal.owner_id, face_id=face.id, params=params,
                            image_id=stored.id, latent_sha256=blob.sha256)
    session.commit()
    return _edit_public(session, edit)


@router.get("/faces/{face_id}/edits", response_model=list[EditPublic], responses=error_docs(401, 403, 404))
def list_edits(face_id: str, principal: ShopperDep, session: SessionDep) -> list[EditPublic]:
    """The caller's edits of one of their faces, oldest first."""
    _owned_face(session, face_id, principal.owner_id)
    return [_edit_public(session, e) for e in repo.list_edits(session, face_id=face_id, owner_id=principal.owner_id)]
