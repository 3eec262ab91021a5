"""ASGI middleware: request ids + request log + metrics, and the request body size limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tryon.api.logs import reset_request_id, set_request_id
from tryon.api.metrics import Metrics

log = logging.getLogger("tryon.api.requests")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives each request an id (the client's `X-Request-ID` when sane), echoes it in the response,
    logs one line per request and records Prometheus metrics by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = 500

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The app's handlers answer every error they know; anything else ends here, inside the
            # request's context, so that the 500 still carries our JSON body and the request id
            # (Starlette's own last-resort handler runs outside this middleware, after the id is gone).
            log.exception("%s %s failed", scope["method"], scope["path"])
            if response_started:
                raise                   # Headers are out: nothing to do but drop the connection.
            for message in internal_error_message(request_id):
                await send_with_id(message)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(seconds)
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "route": template,
                },
            )
            reset_request_id(token)


INTERNAL_ERROR_DETAIL = "internal error: the request could not be completed (quote the request id)"


def internal_error_message(request_id: str) -> tuple[Message, Message]:
    """The ASGI messages of our 500 answer: `{"detail", "request_id"}` as JSON."""
    body = json.dumps({"detail": INTERNAL_ERROR_DETAIL, "request_id": request_id}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the limit. An HTTPException, so that FastAPI's
    form parsing lets it through (other errors there become a 400) and the handlers answer 413."""

    def __init__(self, upload_limit: int) -> None:
        super().__init__(413, f"the request is too large: uploads may be at most {upload_limit:,} bytes")


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413, by Content-Length up front or while
    streaming (chunked uploads), before the app buffers them."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes        # Whole body, multipart overhead included.
        self.upload_limit = upload_limit  # What the user is told (the file limit).

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.upload_limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        from tryon.api.logs import current_request_id

        detail = BodyTooLarge(self.upload_limit).detail
        body = json.dumps({"detail": detail, "request_id": current_request_id()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
