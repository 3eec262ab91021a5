"""GET /health (database, queue, models, ops backend) and GET /metrics (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tryon import __version__
from tryon.api.deps import OPTIONAL_AUTH_OPENAPI, OptionalPrincipalDep, RuntimeDep
from tryon.api.metrics import CONTENT_TYPE
from tryon.api.runtime import Runtime
from tryon.api.schemas import ErrorPublic, HealthPublic
from tryon.db import repositories as repo
from tryon.db.models import Scope

router = APIRouter(tags=["operations"])


def _health(runtime: Runtime) -> tuple[HealthPublic, bool]:
    import tryon.ops
    from tryon.ops._dispatch import build_failures

    ok = True
    database: dict[str, object] = {"backend": runtime.database.backend, "revision": runtime.schema_revision}
    jobs: dict[str, int] = {}
    try:
        runtime.database.ping()
        with runtime.database.sessions() as session:
            jobs = repo.count_jobs_by_status(session)
        database["ok"] = True
    except Exception as exc:
        ok = False
        database.update(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
    queue: dict[str, object] = {
        "backend": runtime.queue.backend,
        "in_process_workers": runtime.in_process_workers,
        "job_kinds": runtime.registry.kinds(),
    }
    try:
        queue.update(ok=True, pending=runtime.queue.pending())
    except Exception as exc:
        ok = False
        queue.update(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
    fashion = runtime.fashion.status()
    runtime.metrics.model_loaded.labels("fashion").set(1 if fashion["status"] == "loaded" else 0)
    body = HealthPublic(
        status="ok" if ok else "degraded",
        version=__version__,
        database=database,
        queue=queue,
        jobs=jobs,
        models={"fashion": fashion},
        ops={
            "impl": runtime.settings.ops_impl,
            "backends": tryon.ops.backends(),  # Filled in as ops run: {"bias_act/cpu": "ref", ...}.
            "build_failures": build_failures(),
        },
    )
    return body, ok


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={
        401: {"model": ErrorPublic, "description": "Credentials were sent and are invalid"},
        503: {"model": HealthPublic, "description": "The database or the queue is down"},
    },
    openapi_extra=OPTIONAL_AUTH_OPENAPI,
)
async def health(runtime: RuntimeDep, principal: OptionalPrincipalDep) -> JSONResponse:
    """200 when the database and queue work, else 503, with `{"status"}`. With an `admin` key also the
    database, queue, jobs, models (checkpoint paths) and ops backend: nothing for anonymous eyes."""
    body, ok = await run_in_threadpool(_health, runtime)
    if principal is None or not principal.has_scope(Scope.ADMIN):
        body = HealthPublic(status=body.status)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: requests, latency, batch sizes, jobs by status, queue length."""
    data = await run_in_threadpool(runtime.metrics.render)
    return Response(content=data, media_type=CONTENT_TYPE)
