"""Errors as JSON `{"detail": ...}` with the right status. Bad input never becomes a 500.

400  malformed request or a value we do not know (InputError, request validation)
401  no or bad credentials            403  the key lacks the scope
404  no such thing (or not yours)     409  an idempotency key reused for another request
413  too large (bytes or pixels)      415  not an allowed image type
422  a valid image we cannot use (no face), an outfit that shows no model
429  too many requests or jobs        503  no model / the database or queue is down
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from tryon.api.logs import current_request_id
from tryon.api.middleware import INTERNAL_ERROR_DETAIL
from tryon.db.repositories import IdempotencyConflictError
from tryon.errors import CheckpointError, InputError, ModelUnavailableError, TooManyRequestsError
from tryon.face.align import NoFaceError
from tryon.fashion.outfits import NotOnModelError
from tryon.vision.io import ImageTooLargeError, UnreadableImageError, UnsupportedImageError

log = logging.getLogger(__name__)

# Exception class -> status. Looked up along the class's MRO, so subclasses come first in effect.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    InputError: 400,
    UnreadableImageError: 400,
    ImageTooLargeError: 413,
    UnsupportedImageError: 415,
    NoFaceError: 422,
    NotOnModelError: 422,
    IdempotencyConflictError: 409,
    ModelUnavailableError: 503,
    CheckpointError: 503,
}


class ApiError(Exception):
    """Raise from a route for a specific status with a readable detail."""

    def __init__(
        self, status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers
        self.extra = extra              # More JSON fields of the body (e.g. a refusal's "reason").


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"no {what} {ident!r} (it does not exist, was deleted, or belongs to someone else)")


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "request_id": current_request_id()}
    body.update(extra)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _status_for(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status_code, exc.detail, exc.headers, **exc.extra)

    async def known_error(request: Request, exc: Exception) -> JSONResponse:
        status = _status_for(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(status, " ".join(str(exc).split()) or type(exc).__name__)

    async def rate_limited(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyRequestsError)
        return error_response(429, str(exc), {"Retry-After": str(exc.retry_after)})

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        detail = "invalid request: " + "; ".join(problems[:10])
        errors = [{k: v for k, v in err.items() if k in ("loc", "msg", "type")} for err in exc.errors()]
        return error_response(400, detail, errors=errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"method {request.method} is not allowed here; allowed: {', '.join(allowed)}"
            return error_response(405, detail, headers)
        return error_response(exc.status_code, str(exc.detail), headers or None)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort only: RequestContextMiddleware answers the app's unexpected errors (with the id).
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, INTERNAL_ERROR_DETAIL)

    app.add_exception_handler(ApiError, api_error)
    for cls in STATUS_BY_ERROR:
        app.add_exception_handler(cls, known_error)
    app.add_exception_handler(TooManyRequestsError, rate_limited)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes. Starlette's 405 names only the first route that
    matched the path (`/v1/keys` has a GET and a POST route: it said `allow: POST`)."""
    from fastapi.routing import iter_route_contexts

    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # Included routers flattened.
        if route.path and route.methods and compile_path(route.path)[0].match(request.url.path):
            methods |= set(route.methods)
    return sorted(methods)


def error_docs(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses."""
    from tryon.api.schemas import ErrorPublic

    text = {
        400: "Malformed request, or a value the service does not know",
        401: "Missing or invalid credentials",
        403: "The API key lacks the scope",
        404: "Not found (or not yours)",
        409: "A conflict: an idempotency key reused for a different request, or a resource that concurrent "
        "requests kept changing while it was read",
        413: "Too large (bytes or pixels)",
        415: "Not an allowed image type (JPEG, PNG, WebP)",
        422: "A valid image that cannot be used (no face, several faces)",
        429: "Too many requests",
        503: "No model available, or a backend is down",
    }
    return {code: {"model": ErrorPublic, "description": text[code]} for code in codes}
