"""The `face.project` job: project an uploaded face (its stored aligned crop) into the face generator,
and its follow-up `face.refine`: pivotal tuning of the generator around that projection.

`POST /v1/faces` queues `face.project` when the kind is registered (`tryon.services.register_jobs`
calls `register_face_jobs`). The handler stores the latent (npz blob, `faces.latent_sha256`) and the
reconstruction (an image of kind "face_reconstruction" with the face's id, so that deleting the face
deletes it), and marks the face "projected": try-ons and edits can start. It then queues `face.refine`
(unless `TRYON_FACE_REFINE_STEPS=0`), keyed by the projection job (`refine_job_key`) so that a retried
projection queues it once and the face finds it without a column of its own. The refinement tunes
low-rank deltas of the synthesis network around the latent (`tryon.face.project.refine_face`) and
replaces the face's latent by the same latent carrying those deltas (and its reconstruction by the
tuned one): later edits and try-ons of the face render with its tuned generator, and deleting the
face deletes the deltas with the latent. A refinement that fails leaves the fast projection in place.

The face models are loaded once per process, on first use, by the process's `FaceService`
(`JobEnv.services.face`, a `tryon.services.Services`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tryon.db.blobs import LATENT_MEDIA_TYPE
from tryon.db.models import ImageKind, JobKind
from tryon.errors import InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from tryon.config import Settings
    from tryon.face.latent import FaceLatent
    from tryon.face.models import FaceModels
    from tryon.face.project import Progress, ProjectionResult
    from tryon.jobs.registry import JobContext, JobEnv, JobRegistry

log = logging.getLogger(__name__)

COMPOSE_STEPS = 100                     # Masked-projection steps of a region composition (~10 s on one core).
DEFAULT_STEPS = 50                      # Optimisation steps after the encoder (~5-10 s on one CPU core).
DEFAULT_REFINE_STEPS = 40               # Pivotal tuning steps of face.refine (~8 s on one CPU core).


class FaceService:
    """Face models for a service process: loaded lazily, once, then shared by every job thread
    (projection is thread-safe: see tryon.face.models)."""

    def __init__(
        self,
        *,
        checkpoint: str | Path | None = None,   # Face checkpoint folder, None = the shipped one.
        device: str = "cpu",                    # Torch device.
        steps: int = DEFAULT_STEPS,             # Optimisation steps per projection.
        pti: bool = False,                      # Pivotal tuning inside the projection job itself.
        refine_steps: int = DEFAULT_REFINE_STEPS,  # Pivotal tuning steps of the face.refine job, 0 = none.
    ) -> None:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
        self.checkpoint = checkpoint
        self.device = device
        self.steps = steps
        self.pti = pti
        self.refine_steps = refine_steps
        self._models: FaceModels | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> FaceService:
        # TRYON_FACE_CHECKPOINT, TRYON_FACE_PROJECT_STEPS, TRYON_FACE_REFINE_STEPS.
        return cls(
            checkpoint=settings.face_checkpoint,
            device=settings.torch_device(),
            steps=settings.face_project_steps,
            refine_steps=settings.face_refine_steps,
        )

    def models(self) -> FaceModels:
        with self._lock:
            if self._models is None:
                from tryon.face.models import load_face_models

                self._models = load_face_models(self.checkpoint, device=self.device)
                log.info("face models loaded from %s (encoder: %s)", self._models.directory,
                         "yes" if self._models.encoder is not None else self._models.encoder_note)
            return self._models

    def project(self, aligned: PILImage.Image, progress: Progress | None = None) -> ProjectionResult:
        from tryon.face.project import project_face

        return project_face(self.models(), aligned, steps=self.steps, pti=self.pti, progress=progress)

    def refine(self, aligned: PILImage.Image, latent: FaceLatent, progress: Progress | None = None) -> ProjectionResult:
        """Pivotal tuning around `latent` (projected from `aligned`), `refine_steps` steps."""
        from tryon.face.project import refine_face

        return refine_face(self.models(), latent, aligned, steps=self.refine_steps, progress=progress)


def refine_job_key(projection_job_id: str) -> str:
    """Idempotency key of the `face.refine` job that the projection job `projection_job_id` queued:
    how a face finds its refinement (`faces.projection_job_id` -> this key -> the job)."""
    return f"face.refine:{projection_job_id}"


def _load_aligned(env: JobEnv, owner_id: str, face_id: str, what: str) -> tuple[PILImage.Image, str | None]:
    """The face's stored aligned crop (what is projected) and its current latent's digest."""
    import io

    from PIL import Image as PILImage

    from tryon.db import repositories as repo

    with env.database.sessions() as session:
        face = repo.get_face(session, face_id=face_id, owner_id=owner_id)
        if face is None:
            raise InputError(f"face {face_id} no longer exists")
        images = repo.face_images(session, face_id=face_id)
        aligned_row = next((img for img in images if img.kind == ImageKind.FACE_ALIGNED), None)
        if aligned_row is None:
            raise InputError(f"face {face_id} has no aligned image to {what}")
        aligned_sha, latent_sha = aligned_row.blob_sha256, face.latent_sha256
    return PILImage.open(io.BytesIO(env.blobs.get(aligned_sha))).convert("RGB"), latent_sha


def _store_projection(
    env: JobEnv, owner_id: str, face_id: str, result: ProjectionResult, *, doing: str, replaces: str | None = None
) -> tuple[str, str]:
    """Make `result` the face's latent and reconstruction (replacing earlier ones) and mark it projected.

    doing: "projected" / "refined", for the message when the face was deleted meanwhile. replaces: the
    latent digest `result` was made from; when the face's latent is another one by now (projected
    again meanwhile), nothing is stored (InputError). Returns (latent digest, reconstruction image id).
    """
    from tryon.db import repositories as repo
    from tryon.db.models import Face, Image
    from tryon.services.storage import save_image

    with env.database.sessions.begin() as session:
        face = session.scalar(select(Face).where(Face.id == face_id, Face.owner_id == owner_id).with_for_update())
        if face is None:
            raise InputError(f"face {face_id} was deleted while it was being {doing}")
        if replaces is not None and face.latent_sha256 != replaces:
            raise InputError(f"face {face_id} was projected again while it was being {doing}")
        old = session.scalars(
            select(Image).where(Image.face_id == face_id, Image.kind == ImageKind.FACE_RECONSTRUCTION)
        ).all()
        old_shas = {img.blob_sha256 for img in old} | ({face.latent_sha256} if face.latent_sha256 else set())
        for img in old:
            session.delete(img)
        blob = repo.store_blob(session, blobs=env.blobs, data=result.latent.to_bytes(), media_type=LATENT_MEDIA_TYPE)
        stored = save_image(session, blobs=env.blobs, owner_id=owner_id, image=result.image,
                            kind=ImageKind.FACE_RECONSTRUCTION, face_id=face_id)
        face.latent_sha256 = blob.sha256
        face.status = "projected"
        dropped = repo.drop_unreferenced_blobs(session, shas=old_shas - {blob.sha256, stored.blob_sha256})
        latent_sha, image_id = blob.sha256, stored.id
    if dropped:
        with env.database.sessions() as session:
            repo.purge_blob_files(session, blobs=env.blobs, shas=dropped)
    return latent_sha, image_id


def _queue_refinement(ctx: JobContext, face_id: str, latent_sha: str) -> str | None:
    """Queue the face's `face.refine` (once per projection job); its id, or None when refinement is off."""
    from tryon.db.repositories import IdempotencyConflictError

    env = ctx.env
    refine_off = env.require_services().face.refine_steps == 0
    if env.queue is None or JobKind.FACE_REFINE not in env.queue.registry or refine_off:
        return None
    try:
        job, _ = env.queue.submit(owner_id=ctx.owner_id, kind=JobKind.FACE_REFINE,
                                  payload={"face_id": face_id, "latent_sha256": latent_sha},
                                  idempotency_key=refine_job_key(ctx.job_id), identity={"face_id": face_id})
    except IdempotencyConflictError:    # The owner used that key for something else: no refinement.
        log.warning("face %s: its refinement key is taken by another request; not refined", face_id)
        return None
    return job.id


def project_face_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`face.project`: payload {"face_id"} -> {"face_id", "reconstruction": {"id", "url"}, "latent_sha256",
    "metrics", "refinement_job": {"id"} or None}."""
    env = ctx.env
    face_id = payload.get("face_id")
    if not isinstance(face_id, str):
        raise InputError("the face.project job needs a face_id")
    aligned, _ = _load_aligned(env, ctx.owner_id, face_id, "project")

    ctx.progress(0.02, "loading the face models")
    result = env.require_services().face.project(aligned, progress=lambda f, m: ctx.progress(0.05 + 0.9 * f, m))
    latent_sha, image_id = _store_projection(env, ctx.owner_id, face_id, result, doing="projected")
    refine_id = _queue_refinement(ctx, face_id, latent_sha)
    metrics = {k: v for k, v in result.metrics.items() if k != "final_loss"}
    return {
        "face_id": face_id,
        "reconstruction": {"id": image_id, "url": f"/v1/images/{image_id}"},
        "latent_sha256": latent_sha,
        "metrics": metrics,
        "refinement_job": {"id": refine_id} if refine_id else None,
    }


def refine_face_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`face.refine`: payload {"face_id", "latent_sha256"} (the projection to tune around) -> {"face_id",
    "reconstruction": {"id", "url"}, "latent_sha256" (the tuned latent), "metrics" (with "before")}."""
    from tryon.face.latent import FaceLatent

    env = ctx.env
    face_id, pivot_sha = payload.get("face_id"), payload.get("latent_sha256")
    if not isinstance(face_id, str) or not isinstance(pivot_sha, str):
        raise InputError("the face.refine job needs a face_id and a latent_sha256")
    aligned, latent_sha = _load_aligned(env, ctx.owner_id, face_id, "refine")
    if latent_sha != pivot_sha:
        raise InputError(f"face {face_id} was projected again since this refinement was queued")
    latent = FaceLatent.from_bytes(env.blobs.get(pivot_sha), name="the face's latent")

    ctx.progress(0.02, "loading the face models")
    result = env.require_services().face.refine(aligned, latent, progress=lambda f, m: ctx.progress(0.05 + 0.9 * f, m))
    tuned_sha, image_id = _store_projection(env, ctx.owner_id, face_id, result, doing="refined", replaces=pivot_sha)
    return {
        "face_id": face_id,
        "reconstruction": {"id": image_id, "url": f"/v1/images/{image_id}"},
        "latent_sha256": tuned_sha,
        "metrics": result.metrics,
    }


def compose_face_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`face.compose`: payload {"edit_id"} of an edit whose params["compose"] is {"face_id", "region",
    "steps"}: the region of that face in the edit's face, by masked projection (tryon.face.mixing).
    -> {"edit_id", "image": {"id", "url"}, "metrics"}."""
    from tryon.db import repositories as repo
    from tryon.face.latent import FaceLatent
    from tryon.face.mixing import compose_faces
    from tryon.services.storage import save_image

    env = ctx.env
    edit_id = payload.get("edit_id")
    if not isinstance(edit_id, str):
        raise InputError("the face.compose job needs an edit_id")
    with env.database.sessions() as session:
        edit = repo.get_edit(session, edit_id=edit_id, owner_id=ctx.owner_id)
        if edit is None:
            raise InputError(f"edit {edit_id} no longer exists")
        spec = dict((edit.params or {}).get("compose") or {})
        shas = []
        for face_id in (edit.face_id, spec.get("face_id")):
            face = repo.get_face(session, face_id=str(face_id), owner_id=ctx.owner_id)
            if face is None or face.latent_sha256 is None:
                raise InputError(f"face {face_id} no longer exists or is not projected")
            shas.append(face.latent_sha256)
        if (edit.params or {}).get("base_edit_id"):  # Composed into an earlier edit of the face.
            under = repo.get_edit(session, edit_id=str(edit.params["base_edit_id"]), owner_id=ctx.owner_id)
            if under is None or under.latent_sha256 is None:
                raise InputError(f"the edit {edit.params['base_edit_id']} this one stacks on was deleted")
            shas[0] = under.latent_sha256
        base_id = edit.face_id
    base, donor = (FaceLatent.from_bytes(env.blobs.get(sha)) for sha in shas)

    ctx.progress(0.02, "loading the face models")
    models = env.require_services().face.models()
    result = compose_faces(models, donor, base, str(spec.get("region")), int(spec.get("steps", COMPOSE_STEPS)),
                           progress=lambda f, m: ctx.progress(0.05 + 0.9 * f, m))

    with env.database.sessions.begin() as session:
        edit = repo.get_edit(session, edit_id=edit_id, owner_id=ctx.owner_id)
        if edit is None:
            raise InputError(f"edit {edit_id} was deleted while it was being composed")
        if edit.image_id is not None:                   # A retry after a lost claim: keep the first result.
            return {"edit_id": edit_id, "image": {"id": edit.image_id, "url": f"/v1/images/{edit.image_id}"},
                    "metrics": (edit.params or {}).get("metrics")}
        blob = repo.store_blob(session, blobs=env.blobs, data=result.latent.to_bytes(), media_type=LATENT_MEDIA_TYPE)
        stored = save_image(session, blobs=env.blobs, owner_id=ctx.owner_id, image=result.image,
                            kind=ImageKind.FACE_EDIT, face_id=base_id)
        edit.latent_sha256, edit.image_id = blob.sha256, stored.id
        edit.params = {**(edit.params or {}), "metrics": result.metrics}
        image_id = stored.id
    return {"edit_id": edit_id, "image": {"id": image_id, "url": f"/v1/images/{image_id}"}, "metrics": result.metrics}


def register_face_jobs(registry: JobRegistry) -> None:
    """Add `face.project`, `face.refine` and `face.compose` to a service's job registry."""
    registry.register(JobKind.FACE_PROJECT, project_face_job, max_attempts=2,
                      description="project an uploaded face into the face generator (encoder + optimisation)")
    registry.register(JobKind.FACE_REFINE, refine_face_job, max_attempts=2,
                      description="tune the face generator around a projected face (pivotal tuning)")
    registry.register(JobKind.FACE_COMPOSE, compose_face_job, max_attempts=2,
                      description="put a region (eyes, mouth, nose, hair) of one face into another")
