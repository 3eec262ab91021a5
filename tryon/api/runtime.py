"""Everything a service process holds: settings, database, blob store, models, job queue, metrics.

It imports no router: `tryon worker` builds it too, and the job handlers live in `tryon.services`.

The API (`create_app`'s lifespan) and `tryon worker` build the same `Runtime`, so a job queued by
one is understood by the other. Building it starts nothing; `start()` migrates the database and
(optionally) starts in-process job workers; `close()` stops them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from tryon.api.metrics import Metrics
from tryon.api.ratelimit import Limits, build_limits
from tryon.api.retention import RetentionSweeper
from tryon.config import Settings
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.migrate import upgrade_to_head
from tryon.jobs.queue import JobQueue
from tryon.jobs.registry import JobEnv, JobRegistry
from tryon.services import Services, register_jobs
from tryon.services.fashion import FashionService

log = logging.getLogger(__name__)


def build_job_registry() -> JobRegistry:
    """The job types of the service (`tryon.services.register_jobs`); routes check `kind in registry`
    to offer a job only when its pipeline is installed."""
    registry = JobRegistry()
    register_jobs(registry)
    return registry


@dataclasses.dataclass
class Runtime:
    settings: Settings
    database: Database
    blobs: BlobStore
    metrics: Metrics
    services: Services                  # The model services; the queue's JobEnv holds the same object.
    registry: JobRegistry
    queue: JobQueue
    limits: Limits
    in_process_workers: int = 0
    schema_revision: str | None = None
    sweeper: RetentionSweeper | None = None

    @property
    def fashion(self) -> FashionService:
        return self.services.fashion

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
        self.services.close()
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
    services = Services.from_settings(settings, on_batch=metrics.batch_observer("fashion"))
    registry = build_job_registry()
    env = JobEnv(database=database, blobs=blobs, settings=settings, services=services)
    queue = JobQueue.from_env(env, registry, worker_name=worker_name)
    runtime = Runtime(
        settings=settings,
        database=database,
        blobs=blobs,
        metrics=metrics,
        services=services,
        registry=registry,
        queue=queue,
        limits=build_limits(settings, _redis_client(settings)),
    )
    metrics.add_state_reader(runtime.state_for_metrics)
    return runtime
