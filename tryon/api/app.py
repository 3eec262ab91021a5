"""The FastAPI application: `create_app(settings)`.

Nothing happens at import or in `create_app` beyond building the app object. The lifespan builds
the runtime (database engine, blob store, job queue, model service), migrates the database to
head, starts the in-process job workers (SQLite default) and, on shutdown, stops them. Models load
lazily, on the first request that needs one (`/health` says which are loaded).

    uvicorn --factory tryon.api.app:app_from_env      # what `tryon serve` runs
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from tryon import __version__
from tryon.api.deps import limit_client_address
from tryon.api.errors import install_error_handlers
from tryon.api.metrics import Metrics
from tryon.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from tryon.api.openapi import install_truthful_openapi
from tryon.api.routers import (
    catalog,
    face_edits,
    faces,
    garments,
    health,
    images,
    jobs,
    outfits,
    products,
    sessions,
    tryon,
    variants,
)
from tryon.api.runtime import Runtime, build_runtime
from tryon.config import Settings, get_settings

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD_BYTES = 64 * 1024    # Room for multipart headers/boundaries around an upload.

DESCRIPTION = """
Virtual try-on: generated outfits, the shared catalog and shops' products, garment photos put on a
model, face uploads, face edits and try-ons.

**Callers.** Shoppers: `POST /v1/sessions` gives an anonymous token; send `Authorization: Bearer <token>`.
Shop backends and designers: send `X-API-Key: <key>` (scopes `shop`, `designer`, `admin`; made with
`tryon keys create --scope ...`). Everything a caller uploads or generates is theirs alone.

**Errors** are JSON `{"detail": "...", "request_id": "..."}`: 400 malformed, 401/403 credentials,
404 not found (or not yours), 409 idempotency key reuse, 413 too large, 415 not an allowed image
type, 422 a valid image we cannot use (no face), 429 rate limit or too many jobs at once (see
`Retry-After`), 503 no model.

**Slow work** runs as jobs: poll `GET /v1/jobs/{id}`. Send `Idempotency-Key` to make a retried
request return the first job.
"""


def create_app(settings: Settings | None = None, *, in_process_workers: int | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment).

    in_process_workers: job threads in this process; None = settings.resolved_job_workers
        (2 with SQLite, 0 with Redis, where `tryon worker` processes run the jobs).
    """
    settings = settings or get_settings()
    # Metrics exist before the lifespan so that the middleware can count from the first request.
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings, metrics=metrics)
        await run_in_threadpool(runtime.start, in_process_workers=in_process_workers)
        app.state.runtime = runtime
        log.info("tryon API %s ready (data in %s)", __version__, settings.data_dir)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)
            log.info("tryon API stopped")

    app = FastAPI(
        dependencies=[Depends(limit_client_address)],  # Every route: requests per client address.
        title="tryon",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "auth", "description": "Sessions and API keys"},
            {"name": "outfits", "description": "Generated outfits and the labels they take"},
            {"name": "catalog", "description": "The shared catalog (generated on first use; designers add to it)"},
            {"name": "products", "description": "A shop's real products (shop API key to import; public to read)"},
            {"name": "variants", "description": "Garment variants for designers"},
            {"name": "garments", "description": "Garment photos put on a generated model"},
            {"name": "faces", "description": "Face uploads (owned by the caller)"},
            {"name": "images", "description": "Stored images"},
            {"name": "jobs", "description": "Slow work"},
            {"name": "operations", "description": "Health and metrics"},
        ],
    )
    install_error_handlers(app)
    install_truthful_openapi(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        upload_limit=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)  # Outermost: every response has an id.
    routers = (health, sessions, outfits, faces, face_edits, images, jobs, tryon, catalog, products, variants, garments)
    for module in routers:
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`): settings from TRYON_* variables."""
    return create_app(get_settings())


def runtime_of(app: FastAPI) -> Runtime:
    """The running app's runtime (inside the lifespan)."""
    runtime: Runtime = app.state.runtime
    return runtime
