"""The HTTP service: `create_app(settings)` (see tryon.api.app). Importing starts nothing, and
`tryon.api.create_app` is imported on first use so that `tryon worker` does not load the web app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tryon.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from tryon.api.app import create_app

        return create_app
    raise AttributeError(f"module 'tryon.api' has no attribute {name!r}")
