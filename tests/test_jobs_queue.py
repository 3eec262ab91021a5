"""Jobs: a real Huey queue (SQLite in-process; Redis when TRYON_TEST_REDIS_URL is set), the jobs
table as the source of truth, retries, progress, idempotency, and workers that die mid-job."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import postgres_database, redis_url_or_skip, service_settings

from tryon.config import Settings
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.migrate import upgrade_to_head
from tryon.db.models import Job, OwnerKind, utcnow
from tryon.errors import InputError
from tryon.jobs.builtin import register_builtin_job_types
from tryon.jobs.queue import JobQueue, JsonSerializer, make_huey
from tryon.jobs.registry import JobContext, JobEnv, JobRegistry

WAIT_S = 60.0  # Upper bound for polling loops (a hang guard, not a speed check).


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Harness:
    """A migrated database, a registry with test job types, and a JobQueue over them."""

    def __init__(self, settings: Settings, huey_name: str | None = None) -> None:
        self.settings = settings
        self.database = Database.from_settings(settings)
        upgrade_to_head(self.database.engine)
        self.registry = JobRegistry()
        register_builtin_job_types(self.registry)
        self.calls: dict[str, int] = {}
        self.release = threading.Event()
        self.registry.register("test.ok", self._ok)
        self.registry.register("test.bad_input", self._bad_input)
        self.registry.register("test.flaky", self._flaky)
        self.registry.register("test.broken", self._broken, max_attempts=2)
        self.registry.register("test.gated", self._gated)
        env = JobEnv(database=self.database, blobs=BlobStore(settings.data_dir / "blobs"), settings=settings)
        if huey_name is None:
            self.queue = JobQueue.from_env(env, self.registry)
        else:
            huey = make_huey(redis_url=settings.redis_url, sqlite_path=None, name=huey_name)
            self.queue = JobQueue(env, self.registry, huey)
        with self.database.sessions.begin() as session:
            self.owner = repo.create_owner(session, kind=OwnerKind.SESSION).id

    def _count(self, ctx: JobContext) -> int:
        self.calls[ctx.job_id] = self.calls.get(ctx.job_id, 0) + 1
        return self.calls[ctx.job_id]

    def _ok(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        self._count(ctx)
        ctx.progress(0.5, "half way")
        return {"echo": payload, "attempt": ctx.attempt}

    def _bad_input(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        self._count(ctx)
        raise InputError("this photo has no face")

    def _flaky(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        if self._count(ctx) == 1:
            raise ConnectionError("GPU out of memory, try again")
        return {"attempt": ctx.attempt}

    def _broken(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        self._count(ctx)
        raise RuntimeError("always fails")

    def _gated(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        ctx.progress(0.25, "waiting for the gate")
        assert self.release.wait(WAIT_S)
        return {"gated": True}

    def submit(self, kind: str, payload: dict[str, Any] | None = None, key: str | None = None) -> str:
        job, _ = self.queue.submit(owner_id=self.owner, kind=kind, payload=payload or {}, idempotency_key=key)
        return job.id

    def job(self, job_id: str) -> Job:
        with self.database.sessions() as session:
            job = repo.get_job(session, job_id=job_id)
            assert job is not None
            return job

    def wait_status(self, job_id: str, *statuses: str) -> Job:
        return wait_for(lambda: (j := self.job(job_id)).status in statuses and j, f"job {job_id} {statuses}")

    def close(self) -> None:
        self.release.set()
        self.queue.stop()
        self.database.dispose()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(service_settings(tmp_path))
    h.queue.start_consumer(2)
    yield h
    h.close()


def test_jobs_run_in_process_with_results_progress_and_errors(harness: Harness) -> None:
    ok = harness.submit("test.ok", {"x": 1})
    bad = harness.submit("test.bad_input")
    flaky = harness.submit("test.flaky")
    broken = harness.submit("test.broken")

    job = harness.wait_status(ok, "succeeded", "failed")
    assert job.status == "succeeded" and job.result == {"echo": {"x": 1}, "attempt": 1}
    assert job.progress == 1.0 and job.attempts == 1 and job.finished_at is not None

    job = harness.wait_status(bad, "succeeded", "failed")  # An input error is not retried.
    assert job.status == "failed" and job.error == "this photo has no face" and job.attempts == 1

    job = harness.wait_status(flaky, "succeeded", "failed")  # A transient error is.
    assert job.status == "succeeded" and job.attempts == 2 and job.result == {"attempt": 2}

    job = harness.wait_status(broken, "succeeded", "failed")
    assert job.status == "failed" and job.attempts == 2 == job.max_attempts
    assert job.error == "RuntimeError: always fails" and harness.calls[broken] == 2


def test_progress_is_visible_while_a_job_runs(harness: Harness) -> None:
    job_id = harness.submit("test.gated")
    job = wait_for(lambda: (j := harness.job(job_id)).progress == 0.25 and j, "progress 0.25")
    assert job.status == "running" and job.message == "waiting for the gate" and job.lease_expires_at is not None
    harness.release.set()
    assert harness.wait_status(job_id, "succeeded").result == {"gated": True}


def test_a_job_whose_data_is_deleted_while_it_runs_says_it_was_cancelled(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The owner's data (the job row with it) is deleted mid-run: the runner stops at its next progress
    report and says why, not that a lease expired."""
    job_id = harness.submit("test.gated")
    wait_for(lambda: harness.job(job_id).progress == 0.25, "progress 0.25")
    with caplog.at_level("INFO", logger="tryon.jobs.runner"), harness.database.sessions.begin() as session:
        assert repo.delete_owner(session, owner_id=harness.owner) is not None
    with caplog.at_level("INFO", logger="tryon.jobs.runner"):
        harness.release.set()
        said = lambda: [m for r in caplog.records if job_id in (m := r.getMessage()) and "started" not in m]  # noqa: E731
        lines = wait_for(said, "the runner's last word on the job")
    assert lines == [f"job {job_id}: cancelled because its data was deleted while it ran; nothing is kept"], lines


def test_idempotency_key_returns_the_first_job(harness: Harness) -> None:
    first = harness.submit("test.ok", {"n": 1}, key="order-17")
    assert harness.submit("test.ok", {"n": 1}, key="order-17") == first
    with pytest.raises(repo.IdempotencyConflictError):
        harness.submit("test.ok", {"n": 2}, key="order-17")
    harness.wait_status(first, "succeeded")
    assert harness.calls[first] == 1


def test_a_job_whose_worker_died_is_retried(tmp_path: Path) -> None:
    h = Harness(service_settings(tmp_path, job_lease_seconds=1.0))
    try:
        job_id = h.submit("test.ok", {"y": 2})
        # A worker took the job and died without a word: its lease ran out long ago.
        with h.database.sessions.begin() as session:
            token = repo.claim_job(session, job_id=job_id, lease_seconds=1.0, now=utcnow() - dt.timedelta(seconds=30))
        assert token is not None and h.job(job_id).status == "running"
        h.queue.start_consumer(1)  # Its start-up check finds the stale job and queues it again.
        job = h.wait_status(job_id, "succeeded", "failed")
        assert job.status == "succeeded" and job.attempts == 2 and job.result == {"echo": {"y": 2}, "attempt": 2}
        with h.database.sessions.begin() as session:  # The dead worker cannot overwrite it.
            assert not repo.finish_job(session, job_id=job_id, claim_token=token, result={"zombie": True})
    finally:
        h.close()


def test_queued_jobs_survive_a_restart(tmp_path: Path) -> None:
    settings = service_settings(tmp_path)
    first = Harness(settings)
    job_id = first.submit("test.ok")  # Queued, but no consumer runs in this "process".
    first.close()
    (settings.data_dir / "jobs.huey.sqlite3").unlink()  # Even if the queue itself is lost...
    second = Harness(settings)
    try:
        second.queue.start_consumer(1)
        assert second.wait_status(job_id, "succeeded").attempts == 1  # ...the jobs table brings it back.
    finally:
        second.close()


def test_queue_messages_are_json_not_pickles() -> None:
    import pickle

    from huey.registry import Message

    ser = JsonSerializer()
    message = Message("id1", "tryon.run_job", None, 0, 0, None, ("job-1",), {})
    data = ser.serialize(message)
    assert data.startswith(b"{") and ser.deserialize(data) == message
    with pytest.raises(ValueError):
        ser.deserialize(pickle.dumps(message))


def test_jobs_run_through_redis(tmp_path: Path) -> None:
    url = redis_url_or_skip()
    name = f"tryon-test-{uuid.uuid4().hex[:8]}"
    h = Harness(service_settings(tmp_path, redis_url=url), huey_name=name)
    try:
        assert h.queue.backend == "redis"
        h.queue.start_consumer(2)
        ids = [h.submit("test.ok", {"i": i}) for i in range(5)] + [h.submit("test.flaky")]
        for job_id in ids:
            assert h.wait_status(job_id, "succeeded", "failed").status == "succeeded"
    finally:
        h.queue.huey.flush()
        h.close()


# --- A real worker process, killed mid-job ----------------------------------------------------------


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tryon.cli", "worker", "--threads", "1", "--log-format", "text"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "ab"),
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_killing_a_worker_mid_job_and_restarting_completes_the_job(tmp_path: Path, backend: str) -> None:
    extra: dict[str, Any] = {"job_lease_seconds": 1.0}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")}
    env.update(TRYON_DATA_DIR=str(tmp_path / "data"), TRYON_JOB_LEASE_SECONDS="1.0", TRYON_DEVICE="cpu")
    if backend == "redis":
        extra["redis_url"] = env["TRYON_REDIS_URL"] = redis_url_or_skip()
    h = Harness(service_settings(tmp_path, **extra))  # Producer only: no consumer in this process.
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path)
    try:
        job_id = h.submit("debug.sleep", {"steps": 20, "seconds": 0.1})
        wait_for(lambda: h.job(job_id).progress >= 0.1, "the worker to make progress")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        job = h.job(job_id)
        assert job.status == "running" and job.attempts == 1  # Orphaned: nobody will finish this try.
        worker = _start_worker(env, log_path)
        job = h.wait_status(job_id, "succeeded", "failed")
        assert job.status == "succeeded", log_path.read_text()[-2000:]
        assert job.attempts == 2 and job.result == {"steps": 20, "attempt": 2}
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if backend == "redis":
            h.queue.huey.flush()
        h.close()


def test_a_job_whose_process_is_gone_is_retried_without_waiting_for_its_lease(tmp_path: Path) -> None:
    """Claims name the host and pid: a gone pid of this host is requeued at once, a live pid (or
    another host) waits for its lease."""
    from tryon.jobs.claims import claimant_pid, new_claim_token

    h = Harness(service_settings(tmp_path, job_lease_seconds=600.0))
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        tokens = {
            "gone": new_claim_token(gone.pid),
            "alive": new_claim_token(alive.pid),
            "mine": new_claim_token(),
            "other host": "0" * 8 + new_claim_token(gone.pid)[8:],
        }
        assert claimant_pid(tokens["gone"]) == gone.pid and claimant_pid(tokens["other host"]) is None
        jobs = {}
        for name, token in tokens.items():
            jobs[name] = h.submit("test.ok", {"name": name})
            with h.database.sessions.begin() as session:
                assert repo.claim_job(session, job_id=jobs[name], lease_seconds=600.0, token=token) == token
        requeued, failed = h.queue.recover()
        assert (requeued, failed) == ([jobs["gone"]], [])
        assert {name: h.job(job_id).status for name, job_id in jobs.items()} == {
            "gone": "queued", "alive": "running", "mine": "running", "other host": "running"
        }
    finally:
        alive.kill()
        alive.wait()
        h.close()


def test_a_killed_worker_s_job_is_retried_at_the_next_start_before_its_lease_ends(tmp_path: Path) -> None:
    """kill -9 of a real `tryon worker` mid-job with a 600 s lease: the next worker on this host
    sees that the claiming pid is gone and runs the job at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")}
    env.update(TRYON_DATA_DIR=str(tmp_path / "data"), TRYON_JOB_LEASE_SECONDS="600", TRYON_DEVICE="cpu")
    h = Harness(service_settings(tmp_path, job_lease_seconds=600.0))  # Producer only.
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path)
    try:
        job_id = h.submit("debug.sleep", {"steps": 20, "seconds": 0.1})
        wait_for(lambda: h.job(job_id).progress >= 0.1, "the worker to make progress")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert h.job(job_id).status == "running"  # Its lease has ~10 minutes left.
        worker = _start_worker(env, log_path)
        job = h.wait_status(job_id, "succeeded", "failed")  # Bounded by WAIT_S (60 s), far less than the lease.
        assert job.status == "succeeded" and job.attempts == 2, log_path.read_text()[-2000:]
        assert "is gone" in log_path.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        h.close()


# --- Jobs at once per caller --------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_burst_of_submissions_gets_no_more_jobs_than_the_cap(tmp_path: Path, database: str) -> None:
    """16 concurrent submissions of one caller, cap 3: exactly 3 jobs; the rest are told to wait;
    an idempotent replay is still answered; another caller is not affected."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if database == "postgresql" else None
        h = Harness(service_settings(tmp_path, database_url=url, max_active_jobs_per_caller=3))
        stack.callback(h.close)
        first = h.submit("test.gated", key="first")
        barrier = threading.Barrier(16)

        def submit_one(i: int) -> str:
            barrier.wait()
            try:
                return h.submit("test.gated", {"i": i})
            except repo.TooManyJobsError as exc:
                assert exc.retry_after > 0 and "3 queued or running" in str(exc)
                return "refused"

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(submit_one, range(16)))
        assert outcomes.count("refused") == 14
        with h.database.sessions() as session:
            assert repo.count_active_jobs(session, owner_id=h.owner) == 3
        assert h.submit("test.gated", key="first") == first  # A replay is not a new job.
        with h.database.sessions.begin() as session:
            other = repo.create_owner(session, kind=OwnerKind.SESSION).id
        assert h.queue.submit(owner_id=other, kind="test.ok", payload={})[1]
        h.queue.start_consumer(3)
        h.release.set()
        h.wait_status(first, "succeeded")
        wait_for(lambda: h.submit("test.ok") if _active(h) < 3 else None, "room for another job")


def _active(h: Harness) -> int:
    with h.database.sessions() as session:
        return repo.count_active_jobs(session, owner_id=h.owner)
