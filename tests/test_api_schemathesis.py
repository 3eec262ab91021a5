"""Property-based API testing with schemathesis against a real `uvicorn` server on loopback.

Schemathesis reads the app's OpenAPI schema and sends generated requests to every operation (valid
and invalid bodies, odd path and query values, multipart uploads). Each answer must not be a 5xx and
must match the schema: documented status code, documented content type, a body that validates
against the documented response model. Callers are an admin API key (every scope, so designer and
admin routes are exercised beyond 401/403).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as CHECKS_REGISTRY
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import save_tiny_fashion_checkpoint, service_settings

from tryon.api import create_app
from tryon.db import repositories as repo

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Every check schemathesis has (`--checks all`) but those that need a stateful run (links between
# operations) or a second caller, and positive_data_acceptance: label values are the served model's
# (GET /v1/labels), not the schema's, so a schema-valid `"category": "x"` is rightly a 400. The rest:
# data the schema forbids must be refused, documented headers, a missing required header refused,
# 405s with Allow, declared auth enforced (optional where it is: /health).
NOT_APPLICABLE = ("use_after_free", "ensure_resource_availability", "object_level_authorization",
                  "positive_data_acceptance")
ALL_CHECKS = CHECKS_REGISTRY.get_by_names([n for n in CHECKS_REGISTRY.get_all_names() if n not in NOT_APPLICABLE])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real server (uvicorn, SQLite, in-process job workers, a tiny fashion model) and an admin key."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    settings = service_settings(tmp, fashion_checkpoint=save_tiny_fashion_checkpoint(tmp / "ckpt"))
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the API server did not start")
        time.sleep(0.05)
    runtime = app.state.runtime
    with runtime.database.sessions.begin() as session:
        _, key = repo.create_api_key(session, name="schemathesis", scopes=["admin"])
    try:
        yield {"base_url": f"http://127.0.0.1:{port}", "headers": {"X-API-Key": key}}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.parametrize(
    ("mode", "checks", "examples"),
    [
        pytest.param(GenerationMode.POSITIVE, CHECKS, 25, id="conformance"),
        pytest.param(GenerationMode.POSITIVE, ALL_CHECKS, 10, id="all-checks-positive"),
        pytest.param(GenerationMode.NEGATIVE, ALL_CHECKS, 10, id="all-checks-negative"),
    ],
)
def test_api_conforms_to_its_schema_and_never_answers_5xx(
    live_api: dict[str, Any], mode: GenerationMode, checks: list[Any], examples: int
) -> None:
    """Every operation, `examples` generated cases each (deterministic), checked against the schema:
    valid requests (positive) and requests the schema forbids (negative), which must be refused."""
    api = schemathesis.openapi.from_url(live_api["base_url"] + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"an operation's schema is invalid: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=live_api["base_url"], headers=live_api["headers"], checks=checks)

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                raise
            continue                    # No parameters or body: nothing to make invalid.
        except Exception as exc:  # One report per operation; all operations are tried.
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 14
    assert not failures, "\n\n".join(failures)
