"""POST /v1/garments (a garment photo -> a `garment.transfer` job), GET /v1/garments/{id}.

Uploading needs the `designer` scope (a transfer is up to 500 optimisation steps of CPU or GPU time);
reading one's garments needs `shop`. The upload goes through the same checks as face photos (size
413, empty 400, signature 415, pixel count 413, decode 400; EXIF applied, metadata dropped). A photo
without a garment (one flat colour) is 422. The job frames the photo like the training flats,
projects it into the fashion G and puts its middle / fine layers on a generated model
(`tryon.fashion.transfer`); poll the job or `GET /v1/garments/{id}` until status is "transferred".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlalchemy.orm import Session

from tryon.api.deps import DesignerDep, RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.idempotency import replayed
from tryon.api.runtime import Runtime
from tryon.api.schemas import GarmentPublic, JobPublic, image_public
from tryon.api.uploads import NON_EMPTY_FILE, decode_upload, read_upload
from tryon.db import repositories as repo
from tryon.db.blobs import sha256_hex
from tryon.db.models import Garment, ImageKind, JobKind
from tryon.errors import InputError
from tryon.fashion.outfits import MAX_SEED
from tryon.fashion.transfer import MAX_STEPS, frame_garment_photo
from tryon.services.fashion import TRANSFER_STEPS
from tryon.services.status import resource_status
from tryon.services.storage import save_image

router = APIRouter(prefix="/v1", tags=["garments"])

MAX_SERVICE_STEPS = min(MAX_STEPS, 500)  # Projection steps a request may ask for.


def garment_public(session: Session, garment: Garment) -> GarmentPublic:
    def image(image_id: str | None) -> object:
        row = repo.get_image(session, image_id=image_id, owner_id=garment.owner_id) if image_id else None
        return image_public(row) if row is not None else None

    job = repo.get_job(session, job_id=garment.job_id) if garment.job_id else None
    state = resource_status(garment, job)
    return GarmentPublic.model_validate(
        {
            "id": garment.id,
            "status": state,
            "photo": image(garment.photo_image_id),
            "flat": image(garment.flat_image_id),
            "on_model": image(garment.on_model_image_id),
            "outfit_id": garment.outfit_id,
            "labels": garment.labels,
            "metrics": garment.metrics,
            "error": job.error if job is not None and state == "failed" else None,
            "job": JobPublic.model_validate(job) if job is not None else None,
            "created_at": garment.created_at,
        }
    )


@router.post(
    "/garments",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GarmentPublic,
    responses={
        200: {"model": GarmentPublic, "description": "Same Idempotency-Key: the first upload's garment"},
        **error_docs(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
)
async def upload_garment(
    file: Annotated[UploadFile, File(description="A product photo of one garment: JPEG, PNG or WebP.",
                                     json_schema_extra=NON_EMPTY_FILE)],
    principal: DesignerDep,
    runtime: RuntimeDep,
    response: Response,
    gender: Annotated[str | None, Form(max_length=100, description="The model's gender (default: read)")] = None,
    seed: Annotated[int, Form(ge=0, le=MAX_SEED, description="Seed of the model who wears it")] = 0,
    steps: Annotated[int, Form(ge=1, le=MAX_SERVICE_STEPS, description="Projection steps")] = TRANSFER_STEPS,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> GarmentPublic:
    """Upload a garment photo; a job puts the garment on a generated model (designer scope: the job
    runs up to 500 optimisation steps)."""
    return await run_in_threadpool(
        _upload, runtime, principal.owner_id, file, gender, seed, steps, idempotency_key, response
    )


def _upload(
    runtime: Runtime,
    owner_id: str,
    file: UploadFile,
    gender: str | None,
    seed: int,
    steps: int,
    idempotency_key: str | None,
    response: Response,
) -> GarmentPublic:
    name = f"the upload {file.filename!r}" if file.filename else "the upload"
    data = read_upload(file, runtime.settings.max_upload_bytes)
    identity = {"photo_sha256": sha256_hex(data), "gender": gender, "seed": seed, "steps": steps}
    with runtime.database.sessions() as session:
        earlier = replayed(session, owner_id=owner_id, key=idempotency_key, kind=JobKind.GARMENT_TRANSFER,
                           request=identity, field="garment_id", what="a garment",
                           load=lambda i: repo.get_garment(session, garment_id=i, owner_id=owner_id))
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return garment_public(session, earlier)
    runtime.queue.check_room(owner_id)  # 429 before any work when the caller has enough jobs running.
    pipeline = runtime.fashion.pipeline()  # 503 without a model, before anything is stored.
    if gender is not None:
        gender = pipeline.resolve_labels(gender=gender)[pipeline.column_for("gender")]  # 400 lists the genders.
    photo = decode_upload(data, name=name, runtime=runtime)
    try:
        frame_garment_photo(photo, pipeline.resolution)
    except InputError as exc:
        raise ApiError(422, str(exc)) from None
    with runtime.database.sessions.begin() as session:
        stored = save_image(session, blobs=runtime.blobs, owner_id=owner_id, image=photo, kind=ImageKind.GARMENT_PHOTO)
        garment_id = repo.create_garment(session, owner_id=owner_id, photo_image_id=stored.id).id
    payload = {"garment_id": garment_id, "gender": gender, "seed": seed, "steps": steps}
    try:
        job, _ = runtime.queue.submit(
            owner_id=owner_id,
            kind=JobKind.GARMENT_TRANSFER,
            payload=payload,
            idempotency_key=idempotency_key,
            identity=identity,
        )
    except repo.TooManyJobsError:
        # Lost a race with the caller's other uploads: no garment without a job is left behind.
        with runtime.database.sessions.begin() as session:
            session.execute(delete(Garment).where(Garment.id == garment_id))
        raise
    with runtime.database.sessions.begin() as session:
        garment = repo.get_garment(session, garment_id=garment_id, owner_id=owner_id)
        assert garment is not None
        garment.job_id = job.id
        garment.status = "transferring"
        session.flush()
        return garment_public(session, garment)


@router.get("/garments", response_model=list[GarmentPublic], responses=error_docs(401, 403))
def list_garments(
    principal: ShopperDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[GarmentPublic]:
    """The caller's garment uploads, newest first (at most `limit`)."""
    return [garment_public(session, g) for g in repo.list_owned(session, Garment, owner_id=principal.owner_id,
                                                                limit=limit)]


@router.get("/garments/{garment_id}", response_model=GarmentPublic, responses=error_docs(401, 403, 404))
def get_garment(garment_id: str, principal: ShopperDep, session: SessionDep) -> GarmentPublic:
    """One of the caller's garments, with the transfer's images and metrics once done."""
    garment = repo.get_garment(session, garment_id=garment_id, owner_id=principal.owner_id)
    if garment is None:
        raise not_found("garment", garment_id)
    return garment_public(session, garment)
