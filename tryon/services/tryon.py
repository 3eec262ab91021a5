"""Try-ons: the process's `TryOnPipeline` and the `tryon.render` job that `POST /v1/tryon` queues.

The job loads the face's latent, the stored edit to build on (if any), the model image and the face's
aligned photo at the photo's own resolution (the "face_aligned_hr" image stored at upload: the face
shown is the shopper's photo, the edits applied to it as the generator's change), and calls
`TryOnPipeline.try_on_latent`. A flat product is first worn by a generated model
(`tryon.fashion.transfer.garment_transfer`). The composite is stored as an image with `face_id` set,
so deleting the face deletes it. A face uploaded before its photo crop was stored gets the
generator's rendering (and a note saying so). Its result: {"tryon_id", "path", "image": {"id",
"url"}, "notes", "metrics"}.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

from PIL import Image as PILImage

from tryon.db import repositories as repo
from tryon.db.models import Image, ImageKind, JobKind
from tryon.errors import InputError
from tryon.services.storage import save_image

if TYPE_CHECKING:
    from tryon.face.models import FaceModels
    from tryon.jobs.registry import JobContext, JobRegistry
    from tryon.pipelines import TryOnPipeline
    from tryon.services.fashion import FashionService

TRANSFER_KEEP = ("colour_distance", "colour_distance_before", "category_agreement")  # Transfer metrics shown.


class TryOnService:
    """The process's TryOnPipeline (its caches), made on first use on the face service's models: one
    copy of the face generator per process, shared with the projection jobs."""

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = device
        self._pipeline: TryOnPipeline | None = None
        self._lock = threading.Lock()

    def pipeline(self, face_models: FaceModels) -> TryOnPipeline:
        """The pipeline on `face_models` (made again when the face service was replaced by another)."""
        from tryon.pipelines import TryOnPipeline

        with self._lock:
            if self._pipeline is None or self._pipeline.face_models is not face_models:
                self._pipeline = TryOnPipeline(face_models=face_models, device=self.device)
            return self._pipeline


def transfer_options(fashion: FashionService, *, gender: str | None, product_gender: str | None) -> dict[str, Any]:
    """How a flat product is put on a generated model: `gender` (checked against the fashion model:
    InputError lists its genders), else the product's own when the model has it, else read from the
    garment; seed 0; the service's steps. ModelUnavailableError without a fashion model."""
    from tryon.services.fashion import TRANSFER_STEPS

    pipeline = fashion.pipeline()
    if gender is not None:
        gender = pipeline.resolve_labels(gender=gender)[pipeline.column_for("gender")]
    elif product_gender in pipeline.values_of("gender"):
        gender = str(product_gender)
    return {"gender": gender, "seed": 0, "steps": TRANSFER_STEPS}


def render_tryon_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`tryon.render`: payload {"tryon_id", "model_image_id", "generated", "path", "transfer"?} -> the
    composite, stored."""
    from tryon.face.latent import FaceLatent

    env = ctx.env
    services = env.require_services()
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
    model = _open_rgb(env.blobs.get(model_sha))
    photo = _open_rgb(env.blobs.get(photo_sha)) if photo_sha is not None else None

    transfer = payload.get("transfer")
    transfer_metrics: dict[str, Any] = {}
    if transfer is not None:  # A flat product: first worn by a generated model.
        model, transfer_metrics = _wear_flat_product(ctx, services.fashion, model, dict(transfer))
    start = 0.1 if transfer is None else 0.6
    ctx.progress(start, "editing and rendering the face")
    pipe = services.tryon.pipeline(services.face.models())
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


def _open_rgb(data: bytes) -> PILImage.Image:
    with PILImage.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _wear_flat_product(
    ctx: JobContext, fashion: FashionService, photo: PILImage.Image, options: dict[str, Any]
) -> tuple[PILImage.Image, dict[str, Any]]:
    """A flat product photo -> a generated model wearing it (`garment_transfer`), and its metrics."""
    from tryon.fashion.transfer import garment_transfer
    from tryon.services.fashion import TRANSFER_STEPS

    result = garment_transfer(
        fashion.pipeline(),
        photo,
        gender=options.get("gender"),
        seed=int(options.get("seed", 0)),
        steps=int(options.get("steps", TRANSFER_STEPS)),
        progress=lambda fraction, message: ctx.progress(0.05 + 0.5 * fraction, message),
    )
    metrics: dict[str, Any] = {k: result.metrics.get(k) for k in TRANSFER_KEEP if k in result.metrics}
    metrics["labels"] = dict(result.on_model_labels)
    metrics["seconds"] = round(float(result.timings.get("total_s", 0.0)), 3)
    return result.on_model, metrics


def register_tryon_jobs(registry: JobRegistry) -> None:
    """Add `tryon.render` to a job registry."""
    registry.register(
        JobKind.TRYON_RENDER, render_tryon_job, description="edit, render and composite a face onto a model"
    )
