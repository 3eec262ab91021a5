"""The OpenAPI document, made to say what the server does:

- a malformed request is a 400 with our error body (`tryon.api.errors` answers validation errors so),
  not FastAPI's default 422 `HTTPValidationError`; 422 stays where a route documents its own (a
  valid image it cannot use);
- every operation may answer 429: each route is limited per client address, and those with
  credentials per caller and per failed authentication too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """`app`'s OpenAPI document with the 400s and 429s the server answers (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses and _is_fastapi_validation_error(responses["422"]):
                del responses["422"]
                responses.setdefault("400", _error("Malformed request, or a value the service does not know"))
            responses.setdefault("429", _error("Too many requests (see the Retry-After header)"))
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    app.openapi_schema = schema
    return schema


def install_truthful_openapi(app: FastAPI) -> None:
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
