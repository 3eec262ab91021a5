"""The fashion generator as a service: loaded lazily, label requests checked, generation batched;
the shipped catalog, and the `outfit.generate` and `garment.transfer` jobs.

Outfit requests name labels of the checkpoint's label schema (`GET /v1/labels`), either directly
(`labels={"articleType": "Tshirts"}`) or through the friendly fields category / colour / gender /
view, which map onto the schema's columns by name (`FIELD_ALIASES`).

Label resolution and generation are the outfit pipeline's (`tryon.pipelines.FashionPipeline`):
latents follow `tryon generate` (NVlabs' generate.py): z = RandomState(seed).randn(z_dim) and const
noise, so an outfit here is the image the CLI makes for the same checkpoint, labels, seed and
truncation. This service adds lazy loading and batching: concurrent requests run as one forward
pass (`DynamicBatcher`); each sample keeps its own truncation. A stored outfit keeps its W+ latent
(`outfit_result`, `tryon.services.storage.save_outfit`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tryon.db.blobs import LATENT_MEDIA_TYPE
from tryon.db.models import ImageKind, JobKind
from tryon.errors import CheckpointError, InputError, ModelUnavailableError
from tryon.fashion.outfits import FIELD_ALIASES as FIELD_ALIASES
from tryon.fashion.outfits import MAX_SEED as MAX_SEED
from tryon.fashion.outfits import OutfitResult
from tryon.fashion.outfits import OutfitSpec as OutfitSpec
from tryon.services.batching import DynamicBatcher
from tryon.services.storage import json_safe, latent_bytes, save_image, save_outfit

if TYPE_CHECKING:
    from tryon.config import Settings
    from tryon.fashion.outfits import FashionPipeline
    from tryon.jobs.registry import JobContext, JobRegistry
    from tryon.labels import LabelSchema
    from tryon.nn import Generator

log = logging.getLogger(__name__)

@dataclasses.dataclass
class FashionModel:
    """A loaded fashion generator."""

    directory: Path
    pipeline: FashionPipeline           # Labels, latents, rendering (one copy for CLI, API, jobs).
    checkpoint_id: str                  # sha256 of config.json (it holds the weights' sha256s).
    device: str
    load_seconds: float

    @property
    def G(self) -> Generator:
        return self.pipeline.G

    @property
    def schema(self) -> LabelSchema | None:  # None: the checkpoint names no labels.
        return self.pipeline.schema

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)


class FashionService:
    """Loads the fashion G on first use and generates outfits in dynamic batches."""

    def __init__(
        self,
        settings: Settings,
        on_batch: Callable[[int, float], None] | None = None,  # Metrics hook (batch size, seconds).
    ) -> None:
        self.settings = settings
        self.checkpoint_dir = settings.resolved_fashion_checkpoint
        self._model: FashionModel | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.catalog_lock = threading.Lock()  # One catalog fill per process at a time (see ensure_catalog).
        self.batcher: DynamicBatcher[OutfitSpec, np.ndarray] = DynamicBatcher(
            self.generate_batch,
            max_batch_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            name="fashion-batcher",
            on_batch=on_batch,
        )

    # --- Model ----------------------------------------------------------------------------------------

    def model(self) -> FashionModel:
        """The loaded model (loading it on first call). Raises ModelUnavailableError with the reason."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> FashionModel:
        if self.checkpoint_dir is None:
            raise ModelUnavailableError(
                "no fashion model is installed: set TRYON_FASHION_CHECKPOINT to a checkpoint folder "
                "(or ship one in tryon/assets/fashion)"
            )
        from tryon.fashion.outfits import FashionPipeline

        device = self.settings.torch_device()
        started = time.perf_counter()
        try:
            pipeline = FashionPipeline.from_checkpoint(
                self.checkpoint_dir, device=device, ops_impl=self.settings.ops_impl, precision=self.settings.precision
            )
        except (CheckpointError, InputError, OSError, KeyError) as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise ModelUnavailableError(f"the fashion model at {self.checkpoint_dir} cannot be loaded: {exc}") from exc
        G = pipeline.G
        # One forward pass at load time builds (or loads) the compiled ops, so that the first
        # request does not pay for it.
        import torch

        with torch.no_grad():
            c = torch.zeros([1, int(G.c_dim)], device=device) if G.c_dim else None
            half = torch.bfloat16 if pipeline.precision == "bf16" else None
            G(torch.zeros([1, int(G.z_dim)], device=device), c, noise_mode="const", half_dtype=half)
        model = FashionModel(
            directory=Path(self.checkpoint_dir),
            pipeline=pipeline,
            checkpoint_id=pipeline.checkpoint_id,
            device=str(device),
            load_seconds=time.perf_counter() - started,
        )
        self._error = None
        log.info(
            "fashion model loaded from %s in %.2f s (%d px, c_dim %d, %s, %s)",
            model.directory,
            model.load_seconds,
            model.resolution,
            int(G.c_dim),
            model.device,
            pipeline.precision,
        )
        return model

    def status(self) -> dict[str, Any]:
        """For /health: loaded or not, and why not."""
        if self._model is not None:
            m = self._model
            return {
                "status": "loaded",
                "checkpoint": str(m.directory),
                "checkpoint_id": m.checkpoint_id,
                "resolution": m.resolution,
                "device": m.device,
                "precision": m.pipeline.precision,
                "load_seconds": round(m.load_seconds, 3),
            }
        if self.checkpoint_dir is None:
            return {"status": "unavailable", "detail": "no fashion checkpoint configured (TRYON_FASHION_CHECKPOINT)"}
        if self._error is not None:
            return {"status": "unavailable", "checkpoint": str(self.checkpoint_dir), "detail": self._error}
        return {"status": "not_loaded", "checkpoint": str(self.checkpoint_dir), "detail": "loads on first use"}

    # --- Requests -------------------------------------------------------------------------------------

    def pipeline(self) -> FashionPipeline:
        """The loaded outfit pipeline (variants, garment transfer and the catalog use it directly)."""
        return self.model().pipeline

    def field_columns(self) -> dict[str, str]:
        """{friendly field: schema column} for the fields this model has."""
        return self.pipeline().field_columns()

    def resolve(
        self, *, fields: Mapping[str, str | None], labels: Mapping[str, str], seed: int, truncation: float
    ) -> OutfitSpec:
        """Check a request against the model's labels. Raises InputError (400) with what is allowed."""
        pipeline = self.pipeline()
        try:
            return pipeline.spec(**{k: v for k, v in fields.items() if v is not None}, labels=labels, seed=seed,
                                 truncation=truncation)
        except CheckpointError as exc:  # A model that cannot serve requests (e.g. unnamed labels).
            raise ModelUnavailableError(str(exc)) from exc

    def labels(self) -> dict[str, Any]:
        """The label schema with the friendly field each column answers to."""
        model = self.model()
        fields = {column: field for field, column in self.field_columns().items()}
        columns = []
        if model.schema is not None:
            for col in model.schema.columns:
                columns.append({"name": col.name, "field": fields.get(col.name), "values": list(col.values)})
        return {
            "checkpoint_id": model.checkpoint_id,
            "conditional": int(model.G.c_dim) > 0,
            "resolution": model.resolution,
            "columns": columns,
        }

    # --- Generation -----------------------------------------------------------------------------------

    def submit(self, spec: OutfitSpec) -> concurrent.futures.Future[np.ndarray]:
        """Queue one outfit for the next batch; the future gets uint8 [H, W, C]."""
        return self.batcher.submit(spec)

    async def generate(self, spec: OutfitSpec) -> np.ndarray:
        return await self.batcher.run(spec)

    def generate_batch(self, specs: Sequence[OutfitSpec]) -> list[np.ndarray]:
        """One forward pass for all `specs` -> uint8 images [H, W, C], in order."""
        return self.pipeline().generate_specs(specs)[1]

    def outfit_result(self, spec: OutfitSpec, image: np.ndarray) -> OutfitResult:
        """A batched outfit's image with its W+ latent, for `save_outfit`. The batch hands back images
        only; the latent is the same spec through the mapping network again (deterministic: the seed's
        z, the spec's truncation), which costs a few small matrix products, not a synthesis."""
        from PIL import Image as PILImage

        ws = self.pipeline().map_specs([spec])[0].cpu().numpy().astype(np.float32)
        return OutfitResult(image=PILImage.fromarray(image), labels=dict(spec.labels), seed=spec.seed,
                            truncation=spec.truncation, ws=ws)

    def checkpoint_id(self) -> str:
        """The loaded model's id (sha256 of its config.json): what stored outfits record."""
        return self.model().checkpoint_id

    def close(self) -> None:
        self.batcher.close()


# ----------------------------------------------------------------------------------------------------
# The shipped catalog, and the jobs: storing what the pipelines make (`tryon.services.storage`).

CATALOG_PER_GROUP = 4                   # Generated catalog items per category x gender x view (its top colours).
CATALOG_STALE_S = 600.0                 # A fill claimed longer ago than this belonged to a dead process.
CATALOG_WAIT_S = 120.0                  # How long a request waits for another process's fill.
TRANSFER_STEPS = 100                    # Default projection steps of the service.


class CatalogNotReadyError(ModelUnavailableError):
    """Another process is still generating the catalog (503: retry shortly)."""


def ensure_catalog(fashion: FashionService, database: Any, blobs: Any) -> int:
    """Generate and store the shipped catalog of the current model once (the first call in any
    process does it; concurrent callers wait). Returns the number of generated items.

    Raises ModelUnavailableError without a model, CatalogNotReadyError when another process's fill
    takes longer than CATALOG_WAIT_S.
    """
    import datetime as dt

    from tryon.db import repositories as repo

    pipeline = fashion.pipeline()
    checkpoint = pipeline.checkpoint_id
    with database.sessions() as session:
        fill = repo.get_catalog_fill(session, checkpoint=checkpoint)
        if fill is not None and fill.status == "done":
            return int(fill.items)
    with fashion.catalog_lock:
        deadline = time.monotonic() + CATALOG_WAIT_S
        while True:
            with database.sessions() as session:
                fill = repo.get_catalog_fill(session, checkpoint=checkpoint)
                if fill is not None and fill.status == "done":
                    return int(fill.items)
                claimed = repo.claim_catalog_fill(
                    session, checkpoint=checkpoint, stale_after=dt.timedelta(seconds=CATALOG_STALE_S)
                )
                if claimed is not None:
                    return _fill_catalog(
                        pipeline, database, blobs, checkpoint, claimed.owner_id, fashion.settings.catalog_candidates
                    )
            if time.monotonic() > deadline:
                raise CatalogNotReadyError("the catalog is being generated by another process: retry in a minute")
            time.sleep(0.25)


def _fill_catalog(
    pipeline: FashionPipeline, database: Any, blobs: Any, checkpoint: str, owner_id: str, candidates: int
) -> int:
    """Generate the catalog plan, keep the items the classifier reads as their labels (`verify_catalog`:
    up to `candidates` seeds each), store them. Returns the number stored."""
    from tryon.db import repositories as repo
    from tryon.db.models import CatalogFill, CatalogSource
    from tryon.fashion.catalog import kept_share, verify_catalog

    started = time.perf_counter()
    plan = pipeline.catalog_specs(CATALOG_PER_GROUP)
    try:
        picks = verify_catalog(pipeline, plan, candidates=candidates)
        kept = [pick for pick in picks if pick.kept]
        with database.sessions.begin() as session:
            for position, pick in enumerate(kept):
                stored = save_image(session, blobs=blobs, owner_id=owner_id, image=pick.image, kind=ImageKind.CATALOG)
                latent = repo.store_blob(session, blobs=blobs, data=latent_bytes(pick.ws), media_type=LATENT_MEDIA_TYPE)
                repo.add_catalog_item(
                    session,
                    owner_id=owner_id,
                    name=pick.name,
                    source=CatalogSource.GENERATED.value,
                    labels=pick.spec.labels,
                    fields=pipeline.friendly_fields(pick.spec.labels),
                    image_id=stored.id,
                    seed=pick.spec.seed,
                    truncation=pick.spec.truncation,
                    params={"classifier": pick.record()} if pick.checked else None,
                    checkpoint=checkpoint,
                    latent_sha256=latent.sha256,
                    slot=f"{checkpoint[:16]}:{position}",
                    position=position,
                )
            repo.finish_catalog_fill(session, checkpoint=checkpoint, items=len(kept))
    except BaseException:
        # Give the claim back so that the next request tries again.
        from sqlalchemy import delete

        with database.sessions.begin() as session:
            session.execute(delete(CatalogFill).where(CatalogFill.checkpoint == checkpoint))
        raise
    log.info(
        "catalog of %d items generated in %.1f s (%d planned; classifier check: %s)",
        len(kept), time.perf_counter() - started, len(plan), kept_share(picks),
    )
    return len(kept)


def outfit_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`outfit.generate`: payload {"labels", "seed", "truncation"} (already checked) -> an outfit."""
    fashion = ctx.env.require_services().fashion
    spec = OutfitSpec(
        labels=dict(payload["labels"]), seed=int(payload["seed"]), truncation=float(payload["truncation"])
    )
    ctx.progress(0.1, "generating")
    result = fashion.outfit_result(spec, fashion.submit(spec).result())
    with ctx.env.database.sessions.begin() as session:
        outfit, stored = save_outfit(
            session, blobs=ctx.env.blobs, owner_id=ctx.owner_id, result=result, checkpoint_id=fashion.checkpoint_id()
        )
    return {"outfit_id": outfit.id, "image_id": stored.id, "image_url": f"/v1/images/{stored.id}"}


def garment_transfer_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`garment.transfer`: payload {"garment_id", "gender"?, "seed"?, "steps"?} -> the garment worn by a model."""
    import io

    from PIL import Image as PILImage

    from tryon.db import repositories as repo
    from tryon.fashion.transfer import garment_transfer

    pipeline = ctx.env.require_services().fashion.pipeline()
    database, blobs = ctx.env.database, ctx.env.blobs
    garment_id = str(payload["garment_id"])
    with database.sessions() as session:
        garment = repo.get_garment(session, garment_id=garment_id, owner_id=ctx.owner_id)
        if garment is None:
            raise InputError(f"garment {garment_id} no longer exists")
        photo_row = repo.get_image(session, image_id=garment.photo_image_id, owner_id=ctx.owner_id)
        if photo_row is None:
            raise InputError(f"the photo of garment {garment_id} no longer exists")
        data = blobs.get(photo_row.blob_sha256)
    with PILImage.open(io.BytesIO(data)) as pil:
        photo = pil.convert("RGB")
    result = garment_transfer(
        pipeline,
        photo,
        gender=payload.get("gender"),
        seed=int(payload.get("seed", 0)),
        steps=int(payload.get("steps", TRANSFER_STEPS)),
        progress=ctx.progress,
    )
    with database.sessions.begin() as session:
        garment = repo.get_garment(session, garment_id=garment_id, owner_id=ctx.owner_id)
        if garment is None:
            raise InputError(f"garment {garment_id} was deleted while it was transferred")
        flat = save_image(session, blobs=blobs, owner_id=ctx.owner_id, image=result.flat, kind=ImageKind.GARMENT_FLAT)
        save_image(session, blobs=blobs, owner_id=ctx.owner_id, image=result.framed, kind=ImageKind.GARMENT_FRAMED)
        worn = OutfitResult(
            image=result.on_model,
            labels=result.on_model_labels,
            seed=result.seed,
            truncation=result.truncation,
            ws=result.on_model_ws,
            params={"mode": "transfer", "garment_id": garment_id, "layers": ["middle", "fine"]},
        )
        outfit, on_model = save_outfit(
            session,
            blobs=blobs,
            owner_id=ctx.owner_id,
            result=worn,
            checkpoint_id=pipeline.checkpoint_id,
            kind=ImageKind.GARMENT_ON_MODEL,
        )
        latent = repo.store_blob(
            session, blobs=blobs, data=latent_bytes(result.flat_ws, labels=result.labels), media_type=LATENT_MEDIA_TYPE
        )
        metrics = json_safe({**result.metrics, "timings": result.timings, "estimate": result.estimate})
        garment.status = "transferred"
        garment.latent_sha256 = latent.sha256
        garment.flat_image_id = flat.id
        garment.on_model_image_id = on_model.id
        garment.outfit_id = outfit.id
        garment.labels = dict(result.labels)
        garment.metrics = metrics
        summary = {k: metrics.get(k) for k in ("colour_distance", "colour_distance_before", "category_agreement")}
        return {
            "garment_id": garment_id,
            "flat": {"id": flat.id, "url": f"/v1/images/{flat.id}"},
            "on_model": {"id": on_model.id, "url": f"/v1/images/{on_model.id}"},
            "outfit_id": outfit.id,
            "metrics": {**summary, "seconds": round(result.timings["total_s"], 3)},
        }


def register_fashion_jobs(registry: JobRegistry) -> None:
    """Add `outfit.generate` and `garment.transfer` to a job registry."""
    registry.register(JobKind.OUTFIT_GENERATE, outfit_job, description="generate an outfit image (batched)")
    registry.register(
        JobKind.GARMENT_TRANSFER, garment_transfer_job, max_attempts=2, description="put a garment photo on a model"
    )
