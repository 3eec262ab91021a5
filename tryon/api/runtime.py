"""Everything a service process holds: settings, database, blob store, models, job queue, metrics.

The API (`create_app`'s lifespan) and `tryon worker` build the same `Runtime`, so a job queued by
one is understood by the other. Building it starts nothing; `start()` migrates the database and
(optionally) starts in-process job workers; `close()` stops them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from tryon.api.fashion import FashionService, OutfitSpec, garment_transfer_job
from tryon.api.metrics import Metrics
from tryon.api.ratelimit import Limits, build_limits
from tryon.api.records import save_outfit
from tryon.api.retention import RetentionSweeper
from tryon.config import Settings
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.migrate import upgrade_to_head
from tryon.db.models import JobKind
from tryon.jobs.builtin import register_builtin_job_types
from tryon.jobs.queue import JobQueue
from tryon.jobs.registry import JobContext, JobEnv, JobRegistry

log = logging.getLogger(__name__)


def outfit_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`outfit.generate`: payload {"labels", "seed", "truncation"} (already checked) -> an outfit."""
    fashion: FashionService = ctx.env.services["fashion"]
    spec = OutfitSpec(
        labels=dict(payload["labels"]), seed=int(payload["seed"]), truncation=float(payload["truncation"])
    )
    ctx.progress(0.1, "generating")
    image = fashion.submit(spec).result()
    checkpoint_id = fashion.model().checkpoint_id
    with ctx.env.database.sessions.begin() as session:
        outfit, stored = save_outfit(
            session, blobs=ctx.env.blobs, owner_id=ctx.owner_id, spec=spec, image=image, checkpoint_id=checkpoint_id
        )
    return {"outfit_id": outfit.id, "image_id": stored.id, "image_url": f"/v1/images/{stored.id}"}


def build_job_registry() -> JobRegistry:
    """The job types of the service. Pipelines add theirs here (e.g. "face.project" from
    tryon.face, "garment.transfer" and "tryon.render" from tryon.pipelines); routes check
    `kind in registry` to offer a job only when its pipeline is installed."""
    registry = JobRegistry()
    register_builtin_job_types(registry)
    registry.register(JobKind.OUTFIT_GENERATE, outfit_job, description="generate an outfit image (batched)")
    registry.register(
        JobKind.GARMENT_TRANSFER, garment_transfer_job, max_attempts=2, description="put a garment photo on a model"
    )
    from tryon.api.face import register_face_jobs

    register_face_jobs(registry)
    from tryon.api.routers.tryon import register_tryon_jobs  # Here: the router imports this module.

    register_tryon_jobs(registry)
    from tryon.services.products import demo_import_job

    registry.register(JobKind.PRODUCTS_IMPORT_DEMO, demo_import_job, max_attempts=2, description="import the demo shop")
    return registry


@dataclasses.dataclass
class Runtime:
    settings: Settings
    database: Database
    blobs: BlobStore
    metrics: Metrics
    fashion: FashionService
    registry: JobRegistry
    queue: JobQueue
    limits: Limits
    in_process_workers: int = 0
    schema_revision: str | None = None
    sweeper: RetentionSweeper | None = None

    def start(self, *, in_process_workers: int | None = None) -> None:
        """Migrate the database to head and start `in_process_workers` job threads (default: the
        settings' `resolved_job_workers`)."""
        self.schema_revision = upgrade_to_head(self.database.engine)
        log.info("database %s at revision %s", self.database.backend, self.schema_revision)
        workers = self.settings.resolved_job_workers if in_process_workers is None else in_process_workers
        if workers > 0:
            self.queue.start_consumer(workers)
        self.in_process_workers = workers
        if self.settings.demo_shop:
            from tryon.services.products import start_demo_shop

            start_demo_shop(
                self.database, self.queue, folder=self.settings.demo_catalog, limit=self.settings.demo_catalog_size
            )
        if self.settings.retention_sweep_minutes > 0:
            self.sweeper = RetentionSweeper(
                self.database,
                self.blobs,
                grace=dt.timedelta(hours=self.settings.session_data_grace_hours),
                interval_s=self.settings.retention_sweep_minutes * 60,
            )
            self.sweeper.start()

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        self.queue.stop()
        self.fashion.close()
        self.database.dispose()

    def state_for_metrics(self) -> dict[str, dict[str, float]]:
        with self.database.sessions() as session:
            jobs = repo.count_jobs_by_status(session)
        return {"jobs": {k: float(v) for k, v in jobs.items()}, "queue": {"pending": float(self.queue.pending())}}


def _redis_client(settings: Settings) -> Any | None:
    """A Redis client for the rate limits shared by replicas (None without TRYON_REDIS_URL)."""
    if not settings.redis_url:
        return None
    import redis

    return redis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)


def build_runtime(settings: Settings, *, metrics: Metrics | None = None, worker_name: str | None = None) -> Runtime:
    """Build (not start) the runtime of a service process (`metrics`: the app's, if it has them)."""
    database = Database.from_settings(settings)
    blobs = BlobStore(settings.data_dir / "blobs")
    metrics = metrics or Metrics()
    fashion = FashionService(settings, on_batch=metrics.batch_observer("fashion"))
    registry = build_job_registry()
    env = JobEnv(database=database, blobs=blobs, settings=settings, services={"fashion": fashion})
    queue = JobQueue.from_env(env, registry, worker_name=worker_name)
    runtime = Runtime(
        settings=settings,
        database=database,
        blobs=blobs,
        metrics=metrics,
        fashion=fashion,
        registry=registry,
        queue=queue,
        limits=build_limits(settings, _redis_client(settings)),
    )
    metrics.add_state_reader(runtime.state_for_metrics)
    return runtime
