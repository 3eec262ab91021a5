"""Face edits: GET /v1/edits/directions, POST and GET /v1/faces/{id}/edits, GET and DELETE
/v1/faces/{id}/edits/{edit_id}, POST /v1/faces/{id}/compositions.

An edit moves the face's projected latent (faces.latent_sha256, written by the `face.project` job)
along fitted directions (tryon.face.edits), optionally after mixing in layer groups of another of the
owner's faces (tryon.face.mixing.mix_styles), and renders it. The rendering is stored as an image of
kind "face_edit" carrying the face's id, and the edited latent as a blob, both referenced by an
`edits` row: deleting the face deletes them, and so does deleting the face mixed in. Rendering takes
tens of milliseconds on a CPU, so edits answer directly (201), without a job.

A composition (a region of another face composed in by masked projection, ~10 s) is an edit made by
a `face.compose` job (tryon.services.face): 202, then the edit's image and latent when the job succeeds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.idempotency import replayed
from tryon.api.rows import finish_deletion, made_edit, projected_face
from tryon.api.runtime import Runtime
from tryon.api.schemas import (
    CompositionCreate,
    EditCreate,
    EditDirectionPublic,
    EditDirectionsPublic,
    EditPublic,
    JobPublic,
    image_public,
)
from tryon.db import repositories as repo
from tryon.db.blobs import LATENT_MEDIA_TYPE
from tryon.db.models import Edit, Face, ImageKind, JobKind
from tryon.services.status import resource_status
from tryon.services.storage import save_image

router = APIRouter(prefix="/v1", tags=["faces"])



def face_models(runtime: Runtime) -> Any:
    """The process's face models (its FaceService's, loaded once)."""
    return runtime.services.face.models()


@router.get("/edits/directions", response_model=EditDirectionsPublic, responses=error_docs(503))
def get_directions(runtime: RuntimeDep) -> EditDirectionsPublic:
    """The named edits a face takes (`POST /v1/faces/{id}/edits`): ranges, units, and the words an
    instruction may use. Unlabelled SeFa / GANSpace components are left out."""
    from tryon.face.directions import describe_layers
    from tryon.face.edits import EDIT_NAMES, face_directions
    from tryon.face.instructions import instruction_words
    from tryon.nn.layer_groups import layer_groups

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
    job = repo.get_job(session, job_id=edit.job_id) if edit.job_id else None
    params = edit.params or {}
    state = resource_status(edit, job)
    return EditPublic(
        id=edit.id,
        face_id=edit.face_id,
        status=state,
        strengths=dict(params.get("strengths") or {}),
        instruction=params.get("instruction"),
        keep=list(params.get("keep") or []),
        mix=params.get("mix"),
        base_edit_id=params.get("base_edit_id"),
        compose=params.get("compose"),
        metrics=params.get("metrics"),
        error=job.error if job is not None and state == "failed" else None,
        job=JobPublic.model_validate(job) if job is not None else None,
        image=image_public(image) if image is not None else None,
        created_at=edit.created_at,
    )


def _stacked_on(base: Edit) -> dict[str, Any]:
    """The params of an edit made on top of `base`: its id, and the faces it took from (deleting any of
    them deletes the new edit too)."""
    sources = repo.edit_sources(base.params)
    return {"base_edit_id": base.id, **({"borrowed_from": sorted(sources)} if sources else {})}


def _owned_face(session: Session, face_id: str, owner_id: str) -> Face:
    face = repo.get_face(session, face_id=face_id, owner_id=owner_id)
    if face is None:
        raise not_found("face", face_id)
    return face


@router.post(
    "/faces/{face_id}/edits",
    status_code=status.HTTP_201_CREATED,
    response_model=EditPublic,
    responses=error_docs(400, 401, 403, 404, 409, 503),
)
def create_edit(
    face_id: str, body: EditCreate, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep
) -> EditPublic:
    """Edit one of the caller's projected faces (409 until its projection job has finished), or stack
    on one of its edits (`base_edit_id`): mix in layer groups of another of their projected faces
    (`mix`), then move it along named directions."""
    from tryon.face.edits import edit_face
    from tryon.face.latent import FaceLatent

    face = projected_face(session, face_id, principal.owner_id)
    params: dict[str, Any] = {"instruction": body.instruction, "keep": body.keep}
    latent_sha = face.latent_sha256
    if body.base_edit_id is not None:
        base = made_edit(session, body.base_edit_id, face)
        latent_sha = base.latent_sha256
        params.update(_stacked_on(base))
    other_sha = projected_face(session, body.mix.face_id, principal.owner_id).latent_sha256 if body.mix else None
    assert latent_sha is not None   # projected_face / made_edit checked it.
    session.rollback()                  # No transaction stays open while the face renders.
    if not body.strengths and not (body.instruction and body.instruction.strip()) and body.mix is None:
        raise ApiError(400, "nothing to edit: give strengths (e.g. {\"age\": 10}), an instruction or a mix")

    latent = FaceLatent.from_bytes(runtime.blobs.get(latent_sha), name="the face's latent")
    other = None
    if body.mix is not None and other_sha is not None:
        other = FaceLatent.from_bytes(runtime.blobs.get(other_sha), name="the mixed face's latent")
        params["mix"] = body.mix.model_dump(mode="json")
    edited = edit_face(face_models(runtime), latent, body.strengths, body.instruction, keep=body.keep, mix=other,
                       mix_groups=body.mix.groups if body.mix is not None else ())
    params["strengths"] = edited.strengths

    face = _owned_face(session, face_id, principal.owner_id)  # Still there?
    if body.base_edit_id is not None:  # And the edit it stacks on (deleted while this one rendered)?
        made_edit(session, body.base_edit_id, face)
    blob = repo.store_blob(session, blobs=runtime.blobs, data=edited.latent.to_bytes(), media_type=LATENT_MEDIA_TYPE)
    stored = save_image(session, blobs=runtime.blobs, owner_id=principal.owner_id, image=edited.image,
                        kind=ImageKind.FACE_EDIT, face_id=face.id)
    edit = repo.create_edit(session, owner_id=principal.owner_id, face_id=face.id, params=params,
                            image_id=stored.id, latent_sha256=blob.sha256)
    session.commit()
    return _edit_public(session, edit)


@router.post(
    "/faces/{face_id}/compositions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EditPublic,
    responses={
        200: {"model": EditPublic, "description": "Same Idempotency-Key: the first request's edit"},
        **error_docs(400, 401, 403, 404, 409, 503),
    },
)
def create_composition(
    face_id: str,
    body: CompositionCreate,
    principal: ShopperDep,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EditPublic | JSONResponse:
    """Compose a region (eyes, mouth, nose, hair) of another of your projected faces into this one.

    Answers 202 with an edit and its `face.compose` job (about 10 s for 100 steps); the edit's image
    and latent appear when the job succeeds. Deleting either face deletes the composition.
    """
    if JobKind.FACE_COMPOSE not in runtime.registry:
        raise ApiError(503, "face composition is not available in this service")
    request = {"face_id": face_id, **body.model_dump(mode="json")}
    earlier = replayed(session, owner_id=principal.owner_id, key=idempotency_key, kind=JobKind.FACE_COMPOSE,
                       request=request, field="edit_id", what="an edit",
                       load=lambda i: repo.get_edit(session, edit_id=i, owner_id=principal.owner_id))
    if earlier is not None:
        return JSONResponse(_edit_public(session, earlier).model_dump(mode="json"), status_code=200)
    if body.face_id == face_id:
        raise ApiError(400, "a composition takes a region of another face: face_id names the face itself")
    runtime.queue.check_room(principal.owner_id)  # 429 before any work when enough jobs are running.
    face = projected_face(session, face_id, principal.owner_id)
    projected_face(session, body.face_id, principal.owner_id)
    params: dict[str, Any] = {"compose": body.model_dump(mode="json", exclude={"base_edit_id"})}
    if body.base_edit_id is not None:
        params.update(_stacked_on(made_edit(session, body.base_edit_id, face)))
    edit = repo.create_edit(session, owner_id=principal.owner_id, face_id=face_id, params=params,
                            image_id=None, latent_sha256=None)
    session.commit()
    job, _ = runtime.queue.submit(owner_id=principal.owner_id, kind=JobKind.FACE_COMPOSE, payload={"edit_id": edit.id},
                                  idempotency_key=idempotency_key, identity=request)
    edit.job_id = job.id
    session.add(edit)
    session.commit()
    return _edit_public(session, edit)


@router.get("/faces/{face_id}/edits", response_model=list[EditPublic], responses=error_docs(401, 403, 404))
def list_edits(face_id: str, principal: ShopperDep, session: SessionDep) -> list[EditPublic]:
    """The caller's edits of one of their faces, oldest first."""
    _owned_face(session, face_id, principal.owner_id)
    return [_edit_public(session, e) for e in repo.list_edits(session, face_id=face_id, owner_id=principal.owner_id)]


@router.get("/faces/{face_id}/edits/{edit_id}", response_model=EditPublic, responses=error_docs(401, 403, 404))
def get_edit(face_id: str, edit_id: str, principal: ShopperDep, session: SessionDep) -> EditPublic:
    """One of the caller's edits of one of their faces (a composition: its status, then its image)."""
    _owned_face(session, face_id, principal.owner_id)
    edit = repo.get_edit(session, edit_id=edit_id, owner_id=principal.owner_id, face_id=face_id)
    if edit is None:
        raise not_found(f"edit of face {face_id}", edit_id)
    return _edit_public(session, edit)


@router.delete(
    "/faces/{face_id}/edits/{edit_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404)
)
def delete_edit(face_id: str, edit_id: str, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep) -> None:
    """Delete one of the caller's edits, the edits stacked on it, the try-ons made from any of them, and
    their images and latents (the face and its other edits stay)."""
    _owned_face(session, face_id, principal.owner_id)
    dropped = repo.delete_edit(session, edit_id=edit_id, face_id=face_id, owner_id=principal.owner_id)
    finish_deletion(session, blobs=runtime.blobs, dropped=dropped, what=f"edit of face {face_id}", row_id=edit_id)
