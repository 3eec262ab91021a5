"""The job queue: Huey carries job ids; our jobs table holds everything else.

- Default: `SqliteHuey` in `<data_dir>/jobs.huey.sqlite3`, consumed by thread workers inside the API
  process (`settings.resolved_job_workers`, 2 by default).
- At scale: `RedisHuey` when `TRYON_REDIS_URL` is set; `tryon worker` processes consume it (one per
  GPU), and API replicas only enqueue.

Every consumer also runs a reaper: at start and every half lease it requeues the jobs of dead
workers (`JobRunner.recover`: leases that expired, and at once the claims of processes of this host
that are gone, see `tryon.jobs.claims`), and at start it re-enqueues every queued job so that nothing the
queue lost stays queued forever (a duplicate delivery is harmless: only one claim succeeds).

Queue messages are JSON (`JsonSerializer`), never pickles: whoever can write to Redis cannot make a
worker run code.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer
from huey.registry import Message
from huey.serializer import Serializer

from tryon.db import repositories as repo
from tryon.db.models import Job
from tryon.jobs.registry import JobEnv, JobRegistry
from tryon.jobs.runner import JobRunner

log = logging.getLogger(__name__)

HUEY_NAME = "tryon"
TASK_NAME = "tryon.run_job"
SQLITE_QUEUE_FILE = "jobs.huey.sqlite3"
SQLITE_POLL_MAX_DELAY_S = 0.2           # Idle SQLite workers poll at least this often (a cheap SELECT).


class JsonSerializer(Serializer):
    """Huey messages as JSON. Our messages are `run_job(job_id)`: nothing else needs to travel."""

    def _serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            fields = data._asdict()
            for name in ("eta", "on_complete", "on_error", "chord_config", "expires_resolved"):
                if fields.get(name) is not None:
                    raise ValueError(f"JsonSerializer cannot carry a huey message with {name}")
            fields["args"] = list(fields["args"] or ())
            data = {"huey_message": fields}
        return json.dumps(data, separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> Any:
        obj = json.loads(data)
        if isinstance(obj, dict) and "huey_message" in obj:
            fields = dict(obj["huey_message"])
            unknown = set(fields) - set(Message._fields)
            if unknown:
                raise ValueError(f"unknown huey message fields {sorted(unknown)}")
            fields["args"] = tuple(fields.get("args") or ())
            return Message(**fields)
        return obj


def make_huey(*, redis_url: str | None, sqlite_path: os.PathLike[str] | str | None, name: str = HUEY_NAME) -> Huey:
    """RedisHuey for `redis_url`, else SqliteHuey at `sqlite_path`. No result store: results live in
    the jobs table."""
    common: dict[str, Any] = {"results": False, "serializer": JsonSerializer(), "utc": True}
    if redis_url:
        return RedisHuey(name, url=redis_url, **common)
    if sqlite_path is None:
        raise ValueError("make_huey needs a redis_url or a sqlite_path")
    return SqliteHuey(name, filename=str(sqlite_path), **common)


class _InProcessConsumer(Consumer):
    """A Huey consumer that leaves signal handling to its host (the API server)."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """Submits jobs and (optionally) consumes them in this process.

    Build one per process; `start_consumer(workers)` starts thread workers and the reaper (the API),
    `run_consumer(workers)` runs them in the foreground until a signal (`tryon worker`).
    """

    def __init__(self, env: JobEnv, registry: JobRegistry, huey: Huey, *, worker_name: str | None = None) -> None:
        self.env = env
        self.registry = registry
        self.huey = huey
        self.backend = "redis" if isinstance(huey, RedisHuey) else "sqlite"
        self.worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self._task = huey.task(name=TASK_NAME, retries=0)(self._run_job)
        self.runner = JobRunner(
            env,
            registry,
            enqueue=self.enqueue,
            lease_seconds=env.settings.job_lease_seconds,
            worker_name=self.worker_name,
        )
        self._consumer: Consumer | None = None
        self._reaper_stop = threading.Event()
        self._reaper: threading.Thread | None = None

    @classmethod
    def from_env(cls, env: JobEnv, registry: JobRegistry, **kwargs: Any) -> JobQueue:
        settings = env.settings
        sqlite_path = None
        if not settings.redis_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            sqlite_path = settings.data_dir / SQLITE_QUEUE_FILE
        return cls(env, registry, make_huey(redis_url=settings.redis_url, sqlite_path=sqlite_path), **kwargs)

    # --- Producing ------------------------------------------------------------------------------------

    def _run_job(self, job_id: str) -> None:
        self.runner.run(job_id)

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)

    def submit(
        self,
        *,
        owner_id: str,
        kind: str,
        payload: dict[str, Any],
        idempotency_key: str | None = None,
        identity: dict[str, Any] | None = None,
        capped: bool = True,
    ) -> tuple[Job, bool]:
        """Record a job (committed) and queue it. Returns (job, created); with an idempotency key an
        earlier identical request returns its job (see `repositories.create_job`).

        capped: refuse with `repositories.TooManyJobsError` (429) when the owner already has
            `settings.max_active_jobs_per_caller` jobs queued or running (False: an operator's batch).
        Raises KeyError for a kind this process does not know.
        """
        if kind not in self.registry:
            raise KeyError(f"unknown job kind {kind!r}; known: {', '.join(self.registry.kinds())}")
        max_attempts = self.runner.max_attempts(kind)
        with self.env.database.sessions.begin() as session:
            job, created = repo.create_job(
                session,
                owner_id=owner_id,
                kind=kind,
                payload=payload,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
                identity=identity,
                max_active=self.max_active if capped else None,
            )
        if created:
            try:
                self.enqueue(job.id)
            except Exception:           # The row is committed: the next consumer start enqueues it again.
                log.exception("job %s: recorded but could not be queued now", job.id)
        return job, created

    @property
    def max_active(self) -> int | None:
        """Queued + running jobs a caller may have at once (None: no cap)."""
        return self.env.settings.max_active_jobs_per_caller or None

    def check_room(self, owner_id: str) -> None:
        """TooManyJobsError (429) when `owner_id` may not queue another job now. Routes call it
        before their work, so that a refused request costs little; `submit` checks again, atomically."""
        if self.max_active is None:
            return
        with self.env.database.sessions() as session:
            repo.check_active_jobs(session, owner_id=owner_id, max_active=self.max_active)

    def pending(self) -> int:
        """Messages waiting in the queue (not jobs: see the jobs table for those)."""
        return int(self.huey.pending_count())

    def ping(self) -> None:
        """Raise when the queue's storage cannot be reached."""
        self.huey.pending_count()

    # --- Consuming ------------------------------------------------------------------------------------

    def _make_consumer(self, workers: int, cls: type[Consumer]) -> Consumer:
        options: dict[str, Any] = {"workers": workers, "worker_type": "thread", "periodic": False}
        if self.backend == "sqlite":
            options["max_delay"] = SQLITE_POLL_MAX_DELAY_S
        return cls(self.huey, **options)

    def _start_reaper(self) -> None:
        self.recover(startup=True)
        interval = max(self.env.settings.job_lease_seconds / 2, 0.05)

        def loop() -> None:
            while not self._reaper_stop.wait(interval):
                try:
                    self.recover()
                except Exception:
                    log.exception("job reaper: could not check for stale jobs")

        self._reaper_stop.clear()
        self._reaper = threading.Thread(target=loop, name="job-reaper", daemon=True)
        self._reaper.start()

    def recover(self, *, startup: bool = False) -> tuple[list[str], list[str]]:
        """Requeue the jobs of dead workers; at start-up also re-enqueue every queued job."""
        requeued, failed = self.runner.recover()
        if startup:
            count = self.runner.enqueue_all_queued()
            if count:
                log.info("job queue: %d queued job(s) enqueued again at start-up", count)
        return requeued, failed

    def start_consumer(self, workers: int) -> None:
        """Start `workers` job threads and the reaper in this process (returns at once)."""
        if self._consumer is not None:
            raise RuntimeError("the consumer is already running")
        if workers < 1:
            raise ValueError("start_consumer needs at least one worker")
        self._consumer = self._make_consumer(workers, _InProcessConsumer)
        self._consumer.start()
        self._start_reaper()
        log.info("job queue (%s): %d in-process worker thread(s)", self.backend, workers)

    def run_consumer(self, workers: int) -> None:
        """Run `workers` job threads and the reaper in the foreground until SIGINT/SIGTERM."""
        consumer = self._make_consumer(workers, Consumer)
        self._start_reaper()
        try:
            consumer.run()
        finally:
            self._stop_reaper()

    def _stop_reaper(self) -> None:
        self._reaper_stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
            self._reaper = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the in-process consumer, waiting up to `timeout` s for running jobs. A job still
        running then is abandoned; its lease expires and another worker retries it."""
        self._stop_reaper()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.shutdown_timeout = timeout
            consumer.stop(graceful=True)


def exit_now_if_jobs_linger(code: int = 0) -> None:
    """Exit at once when job threads are still busy after the API stopped (a job outlived the
    queue's shutdown grace period): letting the interpreter finalise under a thread that is inside
    torch aborts the process. The interrupted job's lease runs out and it is retried at the next start."""
    busy = [t.name for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()]
    if not busy:
        return
    log.warning("stopping with busy threads (%s): interrupted jobs are retried at the next start", ", ".join(busy))
    print("tryon: a running job was interrupted; it is retried at the next start", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)
