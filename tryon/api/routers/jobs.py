"""GET /v1/jobs/{id}: status, progress, result and error of the caller's job (optionally long-polled)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from tryon.api.deps import PrincipalDep, RuntimeDep
from tryon.api.errors import error_docs, not_found
from tryon.api.runtime import Runtime
from tryon.api.schemas import JobPublic
from tryon.db import repositories as repo

router = APIRouter(prefix="/v1", tags=["jobs"])

MAX_WAIT_S = 30.0
_CHECK_INTERVAL_S = 0.1                 # How often a long poll looks at the job.


def _read(runtime: Runtime, job_id: str, owner_id: str) -> JobPublic | None:
    with runtime.database.sessions() as session:
        job = repo.get_job(session, job_id=job_id, owner_id=owner_id)
        return JobPublic.model_validate(job) if job is not None else None


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=error_docs(400, 401, 404))
async def get_job(
    job_id: str,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the job to finish before answering")
    ] = 0.0,
) -> JobPublic:
    """Poll until `status` is `succeeded` (see `result`) or `failed` (see `error`). With `?wait=S` the
    answer comes as soon as the job finishes, or after S seconds with its state then."""
    deadline = time.monotonic() + wait
    while True:
        job = await run_in_threadpool(_read, runtime, job_id, principal.owner_id)
        if job is None:
            raise not_found("job", job_id)
        if job.status in ("succeeded", "failed") or time.monotonic() >= deadline:
            return job
        await asyncio.sleep(min(_CHECK_INTERVAL_S, max(deadline - time.monotonic(), 0)))
