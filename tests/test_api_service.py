"""The API's plumbing: health, metrics, request ids, auth (sessions, API keys, scopes, the `tryon keys`
verb), rate limits, readable 4xx for malformed requests, job ownership, the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import api_key, save_tiny_fashion_checkpoint, service_settings, shopper

from tryon.api import create_app
from tryon.cli import main as tryon_main
from tryon.db import repositories as repo
from tryon.db.migrate import head_revision


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(tmp_path))) as c:
        yield c



def test_health_reports_database_queue_models_and_ops(client: TestClient) -> None:
    # Anonymous callers and non-admin keys learn the status only (it showed the checkpoint path).
    for headers in ({}, shopper(client), api_key(client, "designer")):
        r = client.get("/health", headers=headers)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
    assert client.get("/health", headers={"X-API-Key": "tyk_bogus"}).status_code == 401
    r = client.get("/health", headers=api_key(client, "admin"))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"] == {"backend": "sqlite", "revision": head_revision(), "ok": True}
    assert body["queue"]["backend"] == "sqlite" and body["queue"]["ok"] and body["queue"]["in_process_workers"] == 2
    assert "debug.sleep" in body["queue"]["job_kinds"]
    # None configured here: the shipped model (loaded lazily) when tryon/assets/fashion has one.
    shipped = service_settings(Path("unused")).resolved_fashion_checkpoint is not None
    assert body["models"]["fashion"]["status"] == ("not_loaded" if shipped else "unavailable")
    assert body["ops"]["impl"] == "auto" and isinstance(body["ops"]["backends"], dict)


def test_request_ids_and_metrics(client: TestClient) -> None:
    r = client.get("/health", headers={"X-Request-ID": "req-abc.123"})
    assert r.headers["x-request-id"] == "req-abc.123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert len(generated) == 32 and " " not in generated
    r = client.get("/v1/jobs/nope")
    assert r.status_code == 401 and r.json()["request_id"] == r.headers["x-request-id"]
    text = client.get("/metrics").text
    assert 'tryon_http_requests_total{method="GET",route="/health",status="200"} 2.0' in text
    assert 'route="/v1/jobs/{job_id}",status="401"' in text
    assert 'tryon_jobs{status="queued"}' in text and "tryon_queue_pending" in text


def test_unexpected_errors_are_json_500s_with_the_request_id(tmp_path: Path) -> None:
    """An error nobody expected, in a route or in a dependency, still answers our JSON body with the
    request id of its response header (it was `request_id: null` from Starlette's last resort)."""
    from tryon.api.deps import get_db

    app = create_app(service_settings(tmp_path))

    @app.get("/v1/broken")
    def broken() -> None:
        raise RuntimeError("a bug")

    def no_database() -> None:
        raise ConnectionResetError("the database went away")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/broken", headers={"X-Request-ID": "req-500"})
        assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
        assert r.json()["request_id"] == "req-500" and "request id" in r.json()["detail"]
        app.dependency_overrides[get_db] = no_database
        r = client.get("/v1/jobs/x", headers={"Authorization": "Bearer tys_x"})
        assert r.status_code == 500 and r.json()["request_id"] == r.headers["x-request-id"]
        assert 'route="/v1/broken",status="500"' in client.get("/metrics").text


def test_405s_name_every_method_of_the_path(client: TestClient) -> None:
    """`Allow` lists what every route of the path takes (it named only the first: `allow: POST` for
    `/v1/keys`, which also has GET)."""
    import re

    r = client.options("/v1/keys")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST", r.headers.get("allow")
    assert r.json()["request_id"] == r.headers["x-request-id"] and "GET" in r.json()["detail"]
    for path, ops in client.get("/openapi.json").json()["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x", path)
        r = client.request("PATCH", url)
        assert r.status_code == 405, (path, r.status_code)
        allowed = set(r.headers["allow"].split(", "))
        assert {m.upper() for m in ops} <= allowed, (path, allowed)


def test_credentials_are_required_and_checked(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer tys_nope"}, {"Authorization": "Basic abc"}, {"X-API-Key": "tyk_x"}):
        r = client.get("/v1/jobs/x", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["detail"] and "WWW-Authenticate" in r.headers
    assert client.get("/v1/jobs/x", headers=shopper(client)).status_code == 404


def test_keys_verb_scopes_and_revocation(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRYON_DATA_DIR", str(tmp_path / "data"))
    from tryon.config import get_settings

    get_settings.cache_clear()
    try:
        assert tryon_main(["keys", "create", "--scope", "shop", "--name", "shop backend"]) == 0
        shop_key = capsys.readouterr().out.splitlines()[0]
        assert tryon_main(["keys", "create", "--scope", "admin"]) == 0
        admin_key = capsys.readouterr().out.splitlines()[0]
        with pytest.raises(SystemExit) as refused:
            tryon_main(["keys", "create", "--scope", "root"])
        assert refused.value.code == 2 and "invalid choice" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    assert shop_key.startswith("tyk_") and admin_key.startswith("tyk_")
    assert shop_key not in (tmp_path / "data" / "tryon.sqlite3").read_bytes().decode("latin-1")

    shop = {"X-API-Key": shop_key}
    assert client.get("/v1/jobs/x", headers=shop).status_code == 404  # Authenticated.
    r = client.get("/v1/keys", headers=shop)
    assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
    admin = {"X-API-Key": admin_key}
    listed = client.get("/v1/keys", headers=admin).json()
    assert {k["name"] for k in listed} == {"shop backend", "api key"} and all("key" not in k for k in listed)
    made = client.post("/v1/keys", headers=admin, json={"name": "studio", "scopes": ["designer"]})
    assert made.status_code == 201 and made.json()["key"].startswith("tyk_")
    studio = {"X-API-Key": made.json()["key"]}
    assert client.get("/v1/jobs/x", headers=studio).status_code == 404  # `designer` implies `shop`...
    assert client.get("/v1/keys", headers=studio).status_code == 403  # ...but not `admin`.
    r = client.post("/v1/variants", headers=shop, json={})
    assert r.status_code == 403 and "'designer' scope" in r.json()["detail"]  # `shop` implies nothing.
    assert client.post("/v1/keys", headers=admin, json={"name": "x", "scopes": ["root"]}).status_code == 400
    shop_id = next(k["id"] for k in listed if k["name"] == "shop backend")
    assert client.delete(f"/v1/keys/{shop_id}", headers=admin).status_code == 204
    assert client.get("/v1/jobs/x", headers=shop).status_code == 401  # Revoked.
    # A key also works as a bearer token.
    assert client.get("/v1/jobs/x", headers={"Authorization": f"Bearer {admin_key}"}).status_code == 404


def test_rate_limit_per_caller(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, rate_limit_per_minute=3))) as client:
        a = shopper(client)
        codes = [client.get("/v1/jobs/x", headers=a).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
        r = client.get("/v1/jobs/x", headers=a)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "too many requests" in r.json()["detail"]
        assert client.get("/v1/jobs/x", headers=shopper(client)).status_code == 404  # Others are not affected.


def test_malformed_requests_get_readable_400s(client: TestClient) -> None:
    h = shopper(client)
    r = client.post("/v1/outfits", headers=h, json={"seed": -1, "truncation": "lots"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "seed" in detail and "truncation" in detail and detail.startswith("invalid request")
    assert client.post("/v1/outfits", headers=h, content=b"{not json").status_code == 400
    assert client.post("/v1/outfits", headers=h, json={"colour": "Black", "sparkle": 1}).status_code == 400
    assert client.get("/v1/images/x?format=gif", headers=h).status_code == 400
    assert client.get("/nowhere").status_code == 404


def test_jobs_belong_to_their_owner(client: TestClient) -> None:
    a, b = shopper(client), shopper(client)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        row = repo.find_session(session, token=a["Authorization"].split()[1])
        assert row is not None
    job, _ = runtime.queue.submit(owner_id=row.owner_id, kind="debug.sleep", payload={"steps": 1, "seconds": 0})
    r = client.get(f"/v1/jobs/{job.id}", headers=a)
    assert r.status_code == 200 and r.json()["kind"] == "debug.sleep"
    assert client.get(f"/v1/jobs/{job.id}", headers=b).status_code == 404


def test_openapi_schema_documents_auth_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/health",
        "/metrics",
        "/v1/sessions",
        "/v1/faces",
        "/v1/faces/{face_id}",
        "/v1/outfits",
        "/v1/outfits/{outfit_id}",
        "/v1/labels",
        "/v1/images/{image_id}",
        "/v1/jobs/{job_id}",
    } <= set(schema["paths"])
    schemes = schema["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key" and schemes["HTTPBearer"]["scheme"] == "bearer"
    faces = schema["paths"]["/v1/faces"]["post"]["responses"]
    assert {"201", "400", "413", "415", "422"} <= set(faces)
    assert schema["components"]["schemas"]["OutfitCreate"]["examples"]


def test_no_5xx_for_junk_on_any_route(tmp_path: Path) -> None:
    """Every operation of the OpenAPI schema, called with junk (no body, wrong types, odd ids, a
    broken multipart body), answers 4xx, never 5xx. (A small stand-in for a schemathesis run.)"""
    settings = service_settings(tmp_path, fashion_checkpoint=save_tiny_fashion_checkpoint(tmp_path / "ckpt"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        h = shopper(client)
        schema = client.get("/openapi.json").json()
        junk_bodies: list[dict[str, object]] = [
            {},
            {"json": {"seed": "x", "truncation": None, "labels": [1, 2]}},
            {"json": [1, 2, 3]},
            {"content": b"\x00\xff" * 10, "headers": {"Content-Type": "application/json"}},
            {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            {"files": {"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "image/png")}},
        ]
        ids = ["x", "0" * 32, "%00", "ü" * 300, "../../etc/passwd"]
        calls = 0
        for path, ops in schema["paths"].items():
            for method in ops:
                for ident in ids:
                    url = path.replace("{face_id}", ident).replace("{outfit_id}", ident)
                    url = url.replace("{image_id}", ident).replace("{job_id}", ident).replace("{key_id}", ident)
                    for body in junk_bodies if method in ("post", "put", "patch") else [{}]:
                        extra = dict(body)
                        headers = {**h, **extra.pop("headers", {})}  # type: ignore[dict-item]
                        r = client.request(method.upper(), url, headers=headers, **extra)  # type: ignore[arg-type]
                        calls += 1
                        assert r.status_code < 500, (method, url, body, r.status_code, r.text)
        assert calls > 50


def test_long_poll_answers_when_the_job_finishes(client: TestClient) -> None:
    h = shopper(client)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        row = repo.find_session(session, token=h["Authorization"].split()[1])
        assert row is not None
    job, _ = runtime.queue.submit(owner_id=row.owner_id, kind="debug.sleep", payload={"steps": 3, "seconds": 0.1})
    body = client.get(f"/v1/jobs/{job.id}", headers=h, params={"wait": 30}).json()
    assert body["status"] == "succeeded" and body["result"] == {"steps": 3, "attempt": 1}
    assert client.get(f"/v1/jobs/{job.id}", headers=h, params={"wait": 31}).status_code == 400
