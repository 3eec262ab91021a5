"""POST /v1/tryon (queue a try-on), GET /v1/tryon/{id}; the `tryon.render` job that makes it.

A try-on takes one of the caller's projected faces (its stored latent, `faces.latent_sha256`) and a
model image: an outfit's (the caller's), a catalog item's (anyone's catalog) or a garment's on-model
image (the caller's, once its transfer job is done). The route checks everything it can at once —
404 for a face / outfit / garment that is not the caller's, 409 for a face not projected yet (or a
garment still processing), 422 for a flat (garment-only) outfit that shows no model, 400 for unknown
edit names or instruction words — then records a `tryons` row and queues the job (202).

The job calls `TryOnPipeline.try_on_latent` with the face's latent, its aligned photo at the photo's
own resolution (the "face_aligned_hr" image stored at upload: the face shown is the shopper's photo,
the edits applied to it as the generator's change) and the model image, and stores the composite as
an image with `face_id` set, so deleting the face deletes it. A face uploaded before that image was
stored gets the generator's rendering (and a note saying so). Its result: {"tryon_id", "image":
{"id", "url"}, "notes", "metrics"}.
"""

from __future__ import annotations

import io
import math
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from tryon.api.deps import RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.idempotency import replayed
from tryon.api.records import finish_deletion, save_image
from tryon.api.routers.faces import made_edit, projected_face
from tryon.api.runtime import Runtime
from tryon.api.schemas import TryOnCreate, TryOnPublic, image_public, job_public
from tryon.db import repositories as repo
from tryon.db.models import CatalogItem, Image, ImageKind, JobKind, TryOn
from tryon.errors import InputError
from tryon.jobs.registry import JobContext, JobEnv, JobRegistry

router = APIRouter(prefix="/v1", tags=["try-on"])

_services_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------------
# Resolving what the request names.


def _view_of(labels: dict[str, Any] | None) -> str | None:
    for key, value in (labels or {}).items():
        if str(key).casefold() == "view":
            return str(value)
    return None


def _check_on_model(labels: dict[str, Any] | None, what: str) -> None:
    view = _view_of(labels)
    if view is not None and view != "on_model":
        raise ApiError(
            422, f"the {what} is a {view} image: it shows no model to put a face on; choose an on_model one"
        )


def _resolve_model_image(session: Session, owner_id: str, body: TryOnCreate) -> tuple[Image, dict[str, Any]]:
    """The model image the request names and the source columns of the try-on row."""
    given = [name for name in ("outfit_id", "catalog_id", "garment_id", "product_id") if getattr(body, name)]
    if len(given) != 1:
        raise ApiError(400, "name exactly one of outfit_id, catalog_id, garment_id or product_id")
    if body.gender is not None and not body.product_id:
        raise ApiError(400, "gender chooses the model of a flat product: give it with product_id")
    image: Image | None
    if body.product_id:
        product = repo.get_product(session, product_id=body.product_id)  # Products are public.
        if product is None:
            raise not_found("product", body.product_id)
        image = session.get(Image, product.photo_image_id)
        if image is None:
            raise not_found("product photo", product.photo_image_id)
        # The face goes onto the real photo when it shows one; a flat shot, or an on-model one without
        # a face (legs only), is first worn by a generated model.
        has_face = product.view == "on_model" and int((product.prep or {}).get("faces") or 0) > 0
        path = "photo" if has_face else "garment_transfer"
        return image, {"product_id": product.id, "path": path, "product_gender": product.gender}
    if body.outfit_id:
        outfit = repo.get_outfit(session, outfit_id=body.outfit_id, owner_id=owner_id)
        if outfit is None:
            raise not_found("outfit", body.outfit_id)
        _check_on_model(outfit.labels, "outfit")
        image = session.get(Image, outfit.image_id)
        if image is None:
            raise not_found("outfit image", outfit.image_id)
        return image, {"outfit_id": outfit.id}
    if body.catalog_id:
        item = session.get(CatalogItem, body.catalog_id)  # The catalog is shared: anyone may try it on.
        if item is None:
            raise not_found("catalog item", body.catalog_id)
        _check_on_model({"view": item.view} if item.view else item.labels, "catalog item")
        image = session.get(Image, item.image_id)
        if image is None:
            raise not_found("catalog item image", item.image_id)
        return image, {"catalog_id": item.id, "outfit_id": item.outfit_id}
    assert body.garment_id
    garment = repo.get_garment(session, garment_id=body.garment_id, owner_id=owner_id)
    if garment is None:
        raise not_found("garment", body.garment_id)
    if garment.on_model_image_id is None:
        raise ApiError(
            409, f"the garment {garment.id} is not on a model yet (status {garment.status}): wait for its job"
        )
    image = session.get(Image, garment.on_model_image_id)
    if image is None:
        raise not_found("garment image", garment.on_model_image_id)
    return image, {"garment_id": garment.id, "outfit_id": garment.outfit_id}


def _check_edits(strengths: dict[str, float], instruction: str | None) -> None:
    """Unknown edit names or instruction words -> 400 now rather than a failed job later."""
    for name, value in strengths.items():
        if not math.isfinite(value):
            raise ApiError(400, f"the strength of {name!r} must be a finite number")
    try:
        from tryon.face.instructions import EDIT_NAMES, parse_instruction
    except ImportError:  # The edits are not installed: the job reports it.
        return
    unknown = [n for n in strengths if n not in EDIT_NAMES]
    if unknown:
        raise ApiError(
            400, f"unknown edit name(s) {', '.join(map(repr, unknown))}; known: {', '.join(EDIT_NAMES)}"
        )
    if instruction is not None and instruction.strip():
        parse_instruction(instruction)  # InputError -> 400 with the known words.


def _tryon_public(session: Session, row: TryOn) -> TryOnPublic:
    job = repo.get_job(session, job_id=row.job_id) if row.job_id else None
    image = session.get(Image, row.image_id) if row.image_id else None
    result = (job.result or {}) if job is not None else {}
    edits = dict(row.edits or {})
    if image is not None:
        status_ = "succeeded"
    elif job is not None:
        status_ = job.status
    else:
        status_ = "failed"
    return TryOnPublic(
        id=row.id,
        status=status_,
        face_id=row.face_id,
        outfit_id=row.outfit_id,
        catalog_id=row.catalog_id,
        garment_id=row.garment_id,
        product_id=row.product_id,
        path=(job.payload or {}).get("path", "generated") if job is not None else "generated",
        edits=edits,
        image=image_public(image) if image is not None else None,
        notes=list(result.get("notes") or []),
        metrics=result.get("metrics"),
        error=job.error if job is not None else None,
        job=job_public(job) if job is not None else None,
        created_at=row.created_at,
    )


def _transfer_options(runtime: Runtime, body: TryOnCreate, source: dict[str, Any]) -> dict[str, Any]:
    """How a flat product is put on a generated model: its gender (the request's, else the product's
    when the fashion model has it, else read from the garment), seed 0, the service's steps. 503
    without a fashion model, 400 for a gender the model does not know."""
    from tryon.api.fashion import TRANSFER_STEPS

    pipeline = runtime.fashion.pipeline()
    column = pipeline.column_for("gender")
    gender = body.gender
    if gender is not None:
        gender = pipeline.resolve_labels(gender=gender)[column]  # InputError -> 400 with the genders.
    elif source.get("product_gender") in pipeline.values_of("gender"):
        gender = str(source["product_gender"])
    return {"gender": gender, "seed": 0, "steps": TRANSFER_STEPS}


# ----------------------------------------------------------------------------------------------------
# Routes.


@router.post(
    "/tryon",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TryOnPublic,
    responses={
        200: {"model": TryOnPublic, "description": "Same Idempotency-Key: the first request's try-on"},
        **error_docs(400, 401, 403, 404, 409, 422, 429, 503),
    },
)
def create_tryon(
    body: TryOnCreate,
    principal: ShopperDep,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TryOnPublic | JSONResponse:
    """Put one of your projected faces (with edits) onto an outfit, a catalog item or a garment.

    Answers 202 with the try-on and its `tryon.render` job; poll `GET /v1/tryon/{id}` or the job.
    """
    if JobKind.TRYON_RENDER not in runtime.registry:
        raise ApiError(503, "try-on is not available in this service")
    strengths = dict(body.edits.strengths) if body.edits else {}
    instruction = body.edits.instruction if body.edits else None
    request = body.model_dump(mode="json")
    earlier = replayed(session, owner_id=principal.owner_id, key=idempotency_key, kind=JobKind.TRYON_RENDER,
                       request=request, field="tryon_id", what="a try-on",
                       load=lambda i: repo.get_tryon(session, tryon_id=i, owner_id=principal.owner_id))
    if earlier is not None:
        return JSONResponse(_tryon_public(session, earlier).model_dump(mode="json"), status_code=200)
    session.rollback()
    runtime.queue.check_room(principal.owner_id)  # 429 before any work when enough jobs are running.

    face = projected_face(session, body.face_id, principal.owner_id)
    image, source = _resolve_model_image(session, principal.owner_id, body)
    transfer = _transfer_options(runtime, body, source) if source.get("path") == "garment_transfer" else None
    _check_edits(strengths, instruction)
    edit_id = body.edits.edit_id if body.edits else None
    if edit_id is not None:
        made_edit(session, edit_id, face)

    row = repo.create_tryon(
        session,
        owner_id=principal.owner_id,
        face_id=face.id,
        outfit_id=source.get("outfit_id"),
        garment_id=source.get("garment_id"),
        catalog_id=source.get("catalog_id"),
        product_id=source.get("product_id"),
        edits={"strengths": strengths, "instruction": instruction, **({"edit_id": edit_id} if edit_id else {})},
    )
    session.commit()
    path = source.get("path", "generated")
    payload: dict[str, Any] = {"tryon_id": row.id, "model_image_id": image.id, "generated": path != "photo",
                               "path": path}
    if transfer is not None:
        payload["transfer"] = transfer
    job, _ = runtime.queue.submit(
        owner_id=principal.owner_id,
        kind=JobKind.TRYON_RENDER,
        payload=payload,
        idempotency_key=idempotency_key,
        identity=request,
    )
    row.job_id = job.id
    session.add(row)
    session.commit()
    return _tryon_public(session, row)


@router.get("/tryon", response_model=list[TryOnPublic], responses=error_docs(401, 403))
def list_tryons(
    principal: ShopperDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[TryOnPublic]:
    """The caller's try-ons, newest first (at most `limit`)."""
    return [_tryon_public(session, row) for row in repo.list_owned(session, TryOn, owner_id=principal.owner_id,
                                                                   limit=limit)]


@router.get("/tryon/{tryon_id}", response_model=TryOnPublic, responses=error_docs(401, 403, 404))
def get_tryon(tryon_id: str, principal: ShopperDep, session: SessionDep) -> TryOnPublic:
    """One of the caller's try-ons: its status, and its image when done."""
    row = repo.get_tryon(session, tryon_id=tryon_id, owner_id=principal.owner_id)
    if row is None:
        raise not_found("try-on", tryon_id)
    return _tryon_public(session, row)


@router.delete("/tryon/{tryon_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404))
def delete_tryon(tryon_id: str, principal: ShopperDep, session: SessionDep, runtime: RuntimeDep) -> None:
    """Delete one of the caller's try-ons and its image (a render still running stores nothing)."""
    dropped = repo.delete_tryon(session, tryon_id=tryon_id, owner_id=principal.owner_id)
    finish_deletion(session, blobs=runtime.blobs, dropped=dropped, what="try-on", row_id=tryon_id)


# ----------------------------------------------------------------------------------------------------
# The job.


def tryon_pipeline(env: JobEnv) -> Any:
    """The process's TryOnPipeline, on the face models of the process's FaceService (the projection
    job's: one copy of the face G per process)."""
    from tryon.api.face import face_service
    from tryon.pipelines import TryOnPipeline

    with _services_lock:
        pipe = env.services.get("tryon")
        if pipe is None:
            models = face_service(env).models()
            pipe = TryOnPipeline(face_models=models, device=env.settings.torch_device())
            env.services["tryon"] = pipe
        return pipe


def render_tryon_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`tryon.render`: payload {"tryon_id", "model_image_id", "generated"} -> the composite, stored."""
    from tryon.face.latent import FaceLatent

    env = ctx.env
    tryon_id = str(payload["tryon_id"])
    with env.database.sessions() as session:
        row = repo.get_tryon(session, tryon_id=tryon_id, owner_id=ctx.owner_id)
        if row is None:
            raise InputError(f"the try-on {tryon_id} no longer exists (its face was deleted)")
        face = repo.get_face(session, face_id=row.face_id, owner_id=ctx.owner_id)
        model_row = session.get(Image, str(payload["model_image_id"]))
        if face is None or face.latent_sha256 is None:
            raise InputError(f"the face {row.face_id} was deleted or has no projection")
        if model_row is None:
            raise InputError("the model image was deleted")
        latent_sha, model_sha, base_sha = face.latent_sha256, model_row.blob_sha256, None
        photo_row = next((img for img in repo.face_images(session, face_id=face.id)
                          if img.kind == ImageKind.FACE_ALIGNED_HR), None)
        photo_sha = photo_row.blob_sha256 if photo_row is not None else None
        edits = dict(row.edits or {})
        if edits.get("edit_id"):
            edit = repo.get_edit(session, edit_id=str(edits["edit_id"]), owner_id=ctx.owner_id)
            if edit is None or edit.latent_sha256 is None:
                raise InputError(f"the edit {edits['edit_id']} was deleted")
            base_sha = edit.latent_sha256
    latent = FaceLatent.from_bytes(env.blobs.get(latent_sha), name="the face's latent")
    base = FaceLatent.from_bytes(env.blobs.get(base_sha), name="the edit's latent") if base_sha else None
    with PILImage.open(io.BytesIO(env.blobs.get(model_sha))) as im:
        model = im.convert("RGB")
    photo = None
    if photo_sha is not None:
        with PILImage.open(io.BytesIO(env.blobs.get(photo_sha))) as im:
            photo = im.convert("RGB")

    transfer = payload.get("transfer")
    transfer_metrics: dict[str, Any] = {}
    if transfer is not None:  # A flat product: first worn by a generated model.
        model, transfer_metrics = _wear_flat_product(ctx, model, dict(transfer))
    start = 0.1 if transfer is None else 0.6
    ctx.progress(start, "editing and rendering the face")
    pipe = tryon_pipeline(env)
    result = pipe.try_on_latent(
        latent, model, edits.get("strengths") or {}, instruction=edits.get("instruction"), photo=photo, base=base,
        generated=bool(payload.get("generated", True)),
        progress=lambda fraction, message: ctx.progress(start + (0.9 - start) * fraction, message),
    )
    ctx.progress(0.9, "storing")
    with env.database.sessions.begin() as session:
        row = repo.get_tryon(session, tryon_id=tryon_id, owner_id=ctx.owner_id)
        if row is None:
            raise InputError(f"the try-on {tryon_id} was deleted while it was rendered")
        stored = save_image(
            session, blobs=env.blobs, owner_id=ctx.owner_id, image=result.image, kind=ImageKind.TRYON,
            face_id=row.face_id,
        )
        row.image_id = stored.id
        row.edits = {**edits, "strengths": result.edits}
        session.add(row)
        image_id = stored.id
    metrics = {k: v for k, v in result.metrics.items() if k != "crop"}
    if "crop" in result.metrics:  # Where the face went, result px x0, y0, x1, y1 (a page's close-up).
        metrics["face_box"] = [int(v) for v in result.metrics["crop"]]
    metrics["face"] = "photo" if photo is not None else "generator"
    metrics["seconds"] = {k: round(v, 4) for k, v in result.timings.items()}
    path = str(payload.get("path", "generated"))
    metrics["path"] = path
    if transfer_metrics:
        metrics["garment_transfer"] = transfer_metrics
    return {
        "tryon_id": tryon_id,
        "path": path,
        "image": {"id": image_id, "url": f"/v1/images/{image_id}"},
        "notes": result.notes,
        "metrics": metrics,
    }


def _wear_flat_product(ctx: JobContext, photo: PILImage.Image, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A flat product photo -> a generated model wearing it (`garment_transfer`), and its metrics."""
    from tryon.fashion.transfer import garment_transfer

    pipeline = ctx.env.services["fashion"].pipeline()
    result = garment_transfer(
        pipeline,
        photo,
        gender=options.get("gender"),
        seed=int(options.get("seed", 0)),
        steps=int(options.get("steps", 100)),
        progress=lambda fraction, message: ctx.progress(0.05 + 0.5 * fraction, message),
    )
    keep = ("colour_distance", "colour_distance_before", "category_agreement")
    metrics: dict[str, Any] = {k: result.metrics.get(k) for k in keep if k in result.metrics}
    metrics["labels"] = dict(result.on_model_labels)
    metrics["seconds"] = round(float(result.timings.get("total_s", 0.0)), 3)
    return result.on_model, metrics


def register_tryon_jobs(registry: JobRegistry) -> None:
    """Add `tryon.render` to a job registry (tryon.api.runtime.build_job_registry calls this)."""
    registry.register(
        JobKind.TRYON_RENDER, render_tryon_job, description="edit, render and composite a face onto a model"
    )
