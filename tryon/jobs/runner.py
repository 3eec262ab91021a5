"""Running one job: claim it, keep its lease alive, record progress, store the result or the error.

The jobs table is the source of truth; the queue only carries job ids. Whatever delivers an id (a
Huey worker, a test, a requeue after a crash) calls `JobRunner.run(job_id)`, and the claim (one
conditional UPDATE) makes duplicate deliveries harmless: only one runner gets the job.

    queued ──claim──▶ running ──result──▶ succeeded
       ▲                 │ ──InputError / no tries left──▶ failed
       └─ other error, or lease expired (worker died), while tries are left
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

from tryon.db import repositories as repo
from tryon.errors import TryonError
from tryon.jobs.claims import claimant_pid, claims_of_dead_processes, host_fingerprint, new_claim_token
from tryon.jobs.registry import JobContext, JobEnv, JobLostError, JobRegistry

log = logging.getLogger(__name__)

PROGRESS_MIN_INTERVAL_S = 0.25          # Progress is written at most this often (plus the final value).


class JobRunner:
    """Runs jobs of the types in `registry` for one process.

    enqueue: puts a job id back on the queue (used when a try fails and the job is retried, and
        for jobs recovered from dead workers).
    lease_seconds: a claim lasts this long without a heartbeat; heartbeats come every third of it.
    """

    def __init__(
        self,
        env: JobEnv,                     # Database, blobs, settings, services for the handlers.
        registry: JobRegistry,           # Job types this process can run.
        enqueue: Callable[[str], None],  # Queue a job id (again).
        lease_seconds: float,            # Lease of a claim, seconds.
        worker_name: str = "worker",     # Shown in logs.
    ) -> None:
        self.env = env
        self.registry = registry
        self.enqueue = enqueue
        self.lease_seconds = float(lease_seconds)
        self.worker_name = worker_name

    # ------------------------------------------------------------------------------------------------

    def run(self, job_id: str) -> str | None:
        """Run one try of `job_id` if it can be claimed. Returns the status it ends in, or None when
        this runner did not get the job (someone else has it, or it is finished)."""
        sessions = self.env.database.sessions
        with sessions.begin() as session:
            job = repo.get_job(session, job_id=job_id)
            if job is None:
                log.warning("job %s: not in the database (dropped)", job_id)
                return None
            if job.status != "queued":
                return None
            job_type = self.registry.get(job.kind)
            if job_type is None:
                # Not ours to decide: another process may know this kind. Leave it queued.
                log.error(
                    "job %s: unknown kind %r in %s (known: %s)",
                    job_id,
                    job.kind,
                    self.worker_name,
                    ", ".join(self.registry.kinds()),
                )
                return None
            token = repo.claim_job(session, job_id=job_id, lease_seconds=self.lease_seconds, token=new_claim_token())
            if token is None:
                return None
            session.refresh(job)
            payload, owner_id, attempt = dict(job.payload), job.owner_id, job.attempts
        log.info("job %s (%s): try %d started by %s", job_id, job_type.kind, attempt, self.worker_name)

        lost = threading.Event()
        heartbeat = _Heartbeat(self, job_id, token, lost)
        ctx = JobContext(
            job_id=job_id, owner_id=owner_id, attempt=attempt, env=self.env, report=heartbeat.report_progress
        )
        heartbeat.start()
        started = time.perf_counter()
        try:
            result = job_type.handler(ctx, payload)
            if not isinstance(result, dict):
                raise TypeError(f"job handler for {job_type.kind!r} returned {type(result).__name__}, not a dict")
        except JobLostError:
            self._log_lost(job_id, "stopped")
            return None
        except TryonError as exc:
            return self._fail(job_id, token, str(exc) or type(exc).__name__, retry=False)
        except Exception as exc:
            log.error("job %s: try %d failed:\n%s", job_id, attempt, traceback.format_exc())
            return self._fail(job_id, token, f"{type(exc).__name__}: {exc}", retry=True)
        finally:
            heartbeat.stop()
        with sessions.begin() as session:
            done = repo.finish_job(session, job_id=job_id, claim_token=token, result=result)
        if not done:
            self._log_lost(job_id, "finished")
            return None
        log.info("job %s: succeeded in %.2f s", job_id, time.perf_counter() - started)
        return "succeeded"

    def _log_lost(self, job_id: str, what: str) -> None:
        """Say truthfully why this runner no longer holds `job_id`: the job was deleted with its
        owner's data (a shopper deleted their session, or retention did), or its lease expired and
        another worker took it."""
        with self.env.database.sessions() as session:
            job = repo.get_job(session, job_id=job_id)
        if job is None:
            log.info("job %s: cancelled because its data was deleted while it ran; nothing is kept", job_id)
        else:
            log.warning(
                "job %s: %s after losing its claim (its lease expired; now %s); its result is dropped",
                job_id, what, job.status,
            )

    def _fail(self, job_id: str, token: str, error: str, *, retry: bool) -> str | None:
        with self.env.database.sessions.begin() as session:
            status = repo.fail_job(session, job_id=job_id, claim_token=token, error=error, retry=retry)
        if status == "queued":
            log.info("job %s: will be retried (%s)", job_id, error)
            self.enqueue(job_id)
        elif status == "failed":
            log.info("job %s: failed: %s", job_id, error)
        return status

    def recover(self) -> tuple[list[str], list[str]]:
        """Requeue the jobs of dead workers (expired leases, or claimed by a process of this host
        that is gone: no need to wait for its lease); fail those out of tries.
        Returns (requeued ids, failed ids)."""
        with self.env.database.sessions.begin() as session:
            dead = claims_of_dead_processes(repo.running_claim_tokens(session, prefix=host_fingerprint()))
            for token in dead:
                log.warning("job claim %s…: its process (pid %s on this host) is gone", token[:12], claimant_pid(token))
            requeued, failed = repo.requeue_stale_jobs(session, dead_claims=dead)
        for job_id in requeued:
            log.warning("job %s: its worker stopped responding; queued again", job_id)
            self.enqueue(job_id)
        for job_id in failed:
            log.warning("job %s: its worker stopped responding and it has no tries left; failed", job_id)
        return requeued, failed

    def enqueue_all_queued(self) -> int:
        """Put every queued job on the queue again (after a restart, in case the queue lost messages;
        duplicates are harmless). Returns how many."""
        with self.env.database.sessions.begin() as session:
            ids = repo.queued_job_ids(session)
        for job_id in ids:
            self.enqueue(job_id)
        return len(ids)

    def max_attempts(self, kind: str) -> int:
        job_type = self.registry.get(kind)
        if job_type is not None and job_type.max_attempts is not None:
            return job_type.max_attempts
        return self.env.settings.job_max_attempts


class _Heartbeat:
    """Renews a claim every third of the lease in a thread, and writes throttled progress."""

    def __init__(self, runner: JobRunner, job_id: str, token: str, lost: threading.Event) -> None:
        self.runner = runner
        self.job_id = job_id
        self.token = token
        self.lost = lost
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _write(self, progress: float | None = None, message: str | None = None) -> None:
        with self._lock, self.runner.env.database.sessions.begin() as session:
            ok = repo.heartbeat_job(
                session,
                job_id=self.job_id,
                claim_token=self.token,
                lease_seconds=self.runner.lease_seconds,
                progress=progress,
                message=message,
            )
            self._last_write = time.monotonic()
        if not ok:
            self.lost.set()

    def _loop(self) -> None:
        interval = self.runner.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                self._write()
            except Exception:           # A database hiccup: try again next beat; the lease has slack.
                log.exception("job %s: heartbeat failed", self.job_id)
            if self.lost.is_set():
                return

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        if self.lost.is_set():
            raise JobLostError(self.job_id)
        if fraction < 1.0 and time.monotonic() - self._last_write < PROGRESS_MIN_INTERVAL_S:
            return
        self._write(progress=fraction, message=message)
        if self.lost.is_set():
            raise JobLostError(self.job_id)

