"""The storefront's HTTP client for the tryon API: JSON in and out, readable errors, job polling.

The UI reaches the service only through this client (never by importing `tryon`): every call is
one HTTP request, and every failure becomes an `ApiError` whose `message` a shopper can read
(the API's JSON `detail`, prefixed by what kind of problem it is).

    client = ApiClient("http://127.0.0.1:8000", token=session_token)   # or api_key=designer_key
    face = client.upload("/v1/faces", "me.jpg", data, "image/jpeg")
    job = client.wait_job(face["projection_job"]["id"], on_progress=lambda f, msg: ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

JOB_POLL_SECONDS = 2.0                  # Long-poll slice of GET /v1/jobs/{id}?wait=S (the bar updates this often).
JOB_TIMEOUT_SECONDS = 15 * 60.0         # Longest the UI waits for one job before it says so.

# What kind of problem each status is, in the shopper's words (the API's `detail` says the rest).
_STATUS_TITLES = {
    400: "That request was not accepted",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Not ready yet",
    413: "File too large",
    415: "Not a photo we can read",
    422: "We could not use that",
    429: "Too many requests: wait a minute and try again",
    503: "The service is not ready",
}


class ApiError(Exception):
    """A failed API call. `status` is the HTTP status (0: the API could not be reached), `detail`
    the API's own sentence, `message` both in one line for the page."""

    def __init__(
        self, status: int, detail: str, *, request_id: str | None = None, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.body = body or {}              # The whole JSON error (e.g. `faces` of a photo with several).

    @property
    def message(self) -> str:
        title = _STATUS_TITLES.get(self.status)
        if title is None:
            title = "The service had a problem" if self.status >= 500 else "Something went wrong"
        if self.status == 0:
            title = "Cannot reach the tryon API"
        text = f"{title}: {self.detail}" if self.detail else title
        if self.request_id and self.status >= 500:
            text += f" (request id {self.request_id})"
        return text


class JobFailedError(ApiError):
    """A job that ended with status "failed" (`detail` is the job's error)."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(500, str(job.get("error") or "the job failed without a message"))
        self.job = job

    @property
    def message(self) -> str:
        return f"The {_job_title(self.job)} failed: {self.detail}"


class JobTimeoutError(ApiError):
    def __init__(self, job: dict[str, Any], seconds: float) -> None:
        super().__init__(504, f"still {job.get('status', 'running')} after {seconds:.0f} s; try again later")
        self.job = job

    @property
    def message(self) -> str:
        return f"The {_job_title(self.job)} is taking too long: {self.detail}"


def _job_title(job: dict[str, Any]) -> str:
    titles = {
        "face.project": "face projection",
        "tryon.render": "try-on",
        "garment.transfer": "garment transfer",
        "outfit.generate": "outfit generation",
    }
    kind = str(job.get("kind", "job"))
    return titles.get(kind, kind.replace(".", " "))


def _error_from(response: httpx.Response) -> ApiError:
    detail: Any = None
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        request_id = body.get("request_id") or request_id
    if isinstance(detail, list):  # A validation error list: keep each entry's own message.
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    if not detail:
        detail = response.reason_phrase or f"HTTP {response.status_code}"
    return ApiError(
        response.status_code, str(detail), request_id=request_id, body=body if isinstance(body, dict) else None
    )


class ApiClient:
    """One caller of the tryon API: a shopper (`token` from POST /v1/sessions) or a key holder
    (`api_key`, e.g. a designer)."""

    def __init__(
        self,
        base_url: str,                          # The API's root, e.g. http://127.0.0.1:8000.
        *,
        token: str | None = None,               # Shopper session token (Authorization: Bearer).
        api_key: str | None = None,             # X-API-Key; wins over the token when both are given.
        timeout: float = 60.0,                  # Seconds per request (generation on a CPU takes a few).
        transport: httpx.BaseTransport | None = None,  # Tests: an in-process transport.
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.api_key = api_key
        self.timeout = timeout
        self._transport = transport

    def with_credentials(self, *, token: str | None = None, api_key: str | None = None) -> ApiClient:
        return ApiClient(self.base_url, token=token, api_key=api_key, timeout=self.timeout, transport=self._transport)

    # --- Plumbing -------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self.api_key:
            return {"X-API-Key": self.api_key}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; non-2xx answers and network failures raise ApiError."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        try:
            with httpx.Client(timeout=self.timeout, transport=self._transport) as http:
                response = http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiError(504, f"no answer from {self.base_url} within {self.timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise ApiError(0, f"{self.base_url} ({type(exc).__name__}): is `tryon up` running?") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {}).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def upload(
        self, path: str, filename: str, data: bytes, media_type: str, fields: dict[str, str] | None = None
    ) -> Any:
        """POST a multipart form with the file as `file` (and `fields`)."""
        return self.request("POST", path, files={"file": (filename, data, media_type)}, data=fields or {}).json()

    def image(self, url: str) -> bytes:
        """The bytes of a stored image (`ImagePublic.url`, e.g. /v1/images/ID)."""
        return self.request("GET", url).content

    def has_route(self, path: str) -> bool:
        """Whether the API offers `path` (as listed in its OpenAPI schema), e.g. "/v1/catalog"."""
        try:
            schema = self.get("/openapi.json")
        except ApiError:
            return False
        return path in schema.get("paths", {})

    # --- The service ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/health")
        return result

    def open_session(self) -> dict[str, Any]:
        """A new anonymous shopper session: SessionPublic ({"token", "owner_id", "expires_at"})."""
        result: dict[str, Any] = self.post("/v1/sessions")
        return result

    def new_session(self) -> str:
        """A new anonymous shopper session's token."""
        return str(self.open_session()["token"])

    def session_is_live(self) -> bool:
        """Whether this client's shopper token is still accepted (False: unknown or expired)."""
        try:
            self.get("/v1/faces", limit=1)
        except ApiError as exc:
            if exc.status == 401:
                return False
            raise
        return True

    def job(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/v1/jobs/{job_id}", wait=wait or None)
        return result

    def wait_job(
        self,
        job: dict[str, Any] | str,                              # JobPublic (or its id).
        *,
        on_progress: Callable[[float, str], None] | None = None,  # (fraction 0..1, message) after each poll.
        timeout: float = JOB_TIMEOUT_SECONDS,
        poll: float = JOB_POLL_SECONDS,
    ) -> dict[str, Any]:
        """The job once it succeeded; JobFailedError when it failed, JobTimeoutError after `timeout` seconds."""
        state: dict[str, Any] = {"id": job} if isinstance(job, str) else dict(job)
        deadline = time.monotonic() + timeout
        while True:
            if state.get("status") in ("succeeded", "failed"):
                break
            if time.monotonic() >= deadline:
                raise JobTimeoutError(state, timeout)
            state = self.job(str(state["id"]), wait=poll)
            if on_progress is not None:
                on_progress(float(state.get("progress") or 0.0), str(state.get("message") or state.get("status")))
        if state["status"] == "failed":
            raise JobFailedError(state)
        if on_progress is not None:
            on_progress(1.0, "done")
        return state
