"""Job types: what a job of each kind does. The extension point for slow pipelines.

A job type is a name (e.g. "face.project") and a handler `handler(ctx, payload) -> result`:

    registry = JobRegistry()

    @registry.job_type("face.project", max_attempts=2, description="project a face into the face G")
    def project_face_job(ctx: JobContext, payload: dict) -> dict:
        face = ...                                  # read inputs through ctx.env.database / ctx.env.blobs
        for step in range(steps):
            ...
            ctx.progress((step + 1) / steps, "optimising")  # Stored in the jobs table (throttled).
        return {"face_id": ..., "image_id": ...}    # JSON: becomes the job's `result`.

Errors: a `tryon.errors.TryonError` (e.g. InputError: the input cannot work) fails the job at once
with its message; any other exception is taken as transient and the job is retried while it has
attempts left. A worker that dies mid-job loses its lease and the job is retried too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tryon.config import Settings
    from tryon.db.blobs import BlobStore
    from tryon.db.engine import Database
    from tryon.jobs.queue import JobQueue
    from tryon.services import Services

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class JobLostError(Exception):
    """Raised by `JobContext.progress` when this worker no longer holds the job (its lease expired and
    the job went to another worker): stop working, the result would be discarded."""


@dataclasses.dataclass
class JobEnv:
    """What handlers may use: the database, the blob store, settings, the process's model services
    (`tryon.services.Services`; this package only carries them: it knows nothing of models), and the
    queue, to queue follow-up jobs (set by `JobQueue`; None in an env no queue was built on)."""

    database: Database
    blobs: BlobStore
    settings: Settings
    services: Services | None = None    # None: an env for jobs that need no model (tests, debug.sleep).
    queue: JobQueue | None = None

    def require_services(self) -> Services:
        """The model services, for a handler that needs them."""
        if self.services is None:
            raise RuntimeError("this job needs the service's models, but its process set up none "
                               "(build the JobEnv with services=tryon.services.Services.from_settings(...))")
        return self.services


@dataclasses.dataclass
class JobContext:
    """Handed to a handler for one try of one job."""

    job_id: str
    owner_id: str
    attempt: int                        # 1 for the first try.
    env: JobEnv
    report: Callable[[float, str | None], None]  # Records progress; raises JobLostError.

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress in 0..1 (and what is happening). Raises JobLostError when the job was lost."""
        self.report(fraction, message)


JobHandler = Callable[[JobContext, dict[str, Any]], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class JobType:
    kind: str                           # E.g. "outfit.generate".
    handler: JobHandler
    max_attempts: int | None = None     # Tries; None = settings.job_max_attempts.
    description: str = ""


class JobRegistry:
    """The job types a process knows. The API and `tryon worker` build theirs the same way
    (`tryon.services.register_jobs`), so a job queued by one runs in the other."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def register(
        self, kind: str, handler: JobHandler, *, max_attempts: int | None = None, description: str = ""
    ) -> JobType:
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad job kind {kind!r}: use dotted lowercase names like 'face.project'")
        if kind in self._types:
            raise ValueError(f"job kind {kind!r} is already registered")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        job_type = JobType(kind=kind, handler=handler, max_attempts=max_attempts, description=description)
        self._types[kind] = job_type
        return job_type

    def job_type(
        self, kind: str, *, max_attempts: int | None = None, description: str = ""
    ) -> Callable[[JobHandler], JobHandler]:
        """Decorator form of `register`."""

        def decorate(handler: JobHandler) -> JobHandler:
            self.register(kind, handler, max_attempts=max_attempts, description=description)
            return handler

        return decorate

    def get(self, kind: str) -> JobType | None:
        return self._types.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._types

    def __iter__(self) -> Iterator[JobType]:
        return iter(sorted(self._types.values(), key=lambda t: t.kind))

    def kinds(self) -> list[str]:
        return sorted(self._types)
