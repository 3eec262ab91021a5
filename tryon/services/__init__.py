"""The service's workflows, built on the pipelines, shared by the API's routers, the CLI and the job
workers (which call them, never the other way round):

- `fashion`: `FashionService` (the fashion generator: loaded on first use, batched), the shipped
  catalog (`ensure_catalog`), the `outfit.generate` and `garment.transfer` jobs;
- `face`: `FaceService` (the face models, loaded on first use) and the `face.project`, `face.refine`
  and `face.compose` jobs;
- `tryon`: `TryOnService` (the process's `TryOnPipeline`) and the `tryon.render` job;
- `storage`: images, latents and outfits as rows + blobs;
- `products`: a shop's products and the demo shop.

`Services` holds a process's three model services (the job handlers reach them as
`ctx.env.services`); `register_jobs(registry)` adds every job type. Importing this package imports
neither FastAPI nor any model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tryon.config import Settings
    from tryon.jobs.registry import JobRegistry
    from tryon.services.face import FaceService
    from tryon.services.fashion import FashionService
    from tryon.services.tryon import TryOnService


@dataclasses.dataclass
class Services:
    """A process's model services. Each loads its models on first use, once; building them loads nothing."""

    fashion: FashionService             # The fashion generator (outfits, catalog, variants, transfers).
    face: FaceService                   # The face models (projection, edits, compositions).
    tryon: TryOnService                 # The try-on pipeline, on `face`'s models.

    @classmethod
    def from_settings(cls, settings: Settings, *, on_batch: Callable[[int, float], None] | None = None) -> Services:
        """The services the settings describe (`on_batch`: the fashion batcher's metrics hook)."""
        from tryon.services.face import FaceService
        from tryon.services.fashion import FashionService
        from tryon.services.tryon import TryOnService

        return cls(
            fashion=FashionService(settings, on_batch=on_batch),
            face=FaceService.from_settings(settings),
            tryon=TryOnService(device=settings.torch_device()),
        )

    def close(self) -> None:
        """Stop the fashion batcher's thread (the models are freed with the object)."""
        self.fashion.close()


def register_jobs(registry: JobRegistry) -> None:
    """Add the service's job types to `registry`: the API and `tryon worker` both call this, so a job
    queued by one runs in the other. Routes check `kind in registry` before they queue one."""
    from tryon.db.models import JobKind
    from tryon.jobs.builtin import register_builtin_job_types
    from tryon.services.face import register_face_jobs
    from tryon.services.fashion import register_fashion_jobs
    from tryon.services.products import demo_import_job
    from tryon.services.tryon import register_tryon_jobs

    register_builtin_job_types(registry)
    register_fashion_jobs(registry)
    register_face_jobs(registry)
    register_tryon_jobs(registry)
    registry.register(JobKind.PRODUCTS_IMPORT_DEMO, demo_import_job, max_attempts=2, description="import the demo shop")
