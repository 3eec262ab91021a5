"""The OpenAPI document says what the server does: every operation documents 429; malformed requests
are documented as the 400 the server answers (not FastAPI's 422); the request examples are accepted
by the server with the shipped fashion model; "exactly one of outfit_id / image_id" and non-empty
uploads are in the schema; numbers in bodies are strict (`false` is not 0.0)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from service_helpers import api_key, service_settings, shopper

from tryon.api import create_app

SHIPPED_FASHION = Path(__file__).resolve().parents[1] / "tryon" / "assets" / "fashion"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    if not (SHIPPED_FASHION / "config.json").is_file():
        pytest.skip(f"the shipped fashion model is absent ({SHIPPED_FASHION})")
    settings = service_settings(tmp_path_factory.mktemp("openapi"), fashion_checkpoint=SHIPPED_FASHION)
    with TestClient(create_app(settings, in_process_workers=0)) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def test_every_operation_documents_429_and_no_fastapi_422(doc: dict[str, Any]) -> None:
    missing_429 = [f"{m.upper()} {p}" for m, p, op in operations(doc) if "429" not in op["responses"]]
    assert not missing_429, missing_429
    fastapi_422 = [
        f"{m.upper()} {p}"
        for m, p, op in operations(doc)
        if "HTTPValidationError" in str(op["responses"].get("422", ""))
    ]
    assert not fastapi_422, fastapi_422
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    with_input = [
        (m, p, op) for m, p, op in operations(doc) if op.get("parameters") or op.get("requestBody")
    ]
    assert len(with_input) > 20
    no_400 = [f"{m.upper()} {p}" for m, p, op in with_input if "400" not in op["responses"]]
    assert not no_400, no_400


def test_a_validation_error_is_the_documented_400(client: TestClient, doc: dict[str, Any]) -> None:
    r = client.get("/v1/faces?limit=0", headers=shopper(client))
    assert r.status_code == 400 and "limit" in r.json()["detail"]
    documented = doc["paths"]["/v1/faces"]["get"]["responses"]["400"]["content"]["application/json"]["schema"]
    error_schema = resolve(doc, documented)
    jsonschema.validate(r.json(), error_schema)  # detail, request_id and each problem in `errors`.
    assert r.json()["errors"][0]["loc"] == ["query", "limit"]
    assert "422" not in doc["paths"]["/v1/faces"]["get"]["responses"]


def test_the_request_examples_are_accepted(client: TestClient, doc: dict[str, Any]) -> None:
    """Each example of a JSON request body, sent to its operation (made-up ids in a path become 404s,
    after the body was validated): never 400, and the outfit and variants examples make images with
    the shipped model (whose labels are e.g. tops / black)."""
    headers = api_key(client, "admin")
    sent = {}
    for method, path, op in operations(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        schema = resolve(doc, body["schema"])
        for example in schema.get("examples", []):
            url = path.replace("{", "").replace("}", "")  # /v1/faces/face_id/edits: no such face.
            r = client.request(method.upper(), url, json=example, headers=headers)
            assert r.status_code != 400 and r.status_code < 500, (method, path, example, r.text)
            sent[path] = r.status_code
    assert sent["/v1/outfits"] == 201 and sent["/v1/variants"] == 201 and sent["/v1/keys"] == 201
    assert len(sent) >= 6


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/outfits", {"view": "on_model", "truncation": False}),
        ("/v1/outfits", {"view": "on_model", "seed": True}),
        ("/v1/outfits", {"view": "on_model", "truncation": "0.5"}),
        ("/v1/variants", {"base": {"view": "flat"}, "mode": "truncation", "truncations": [0.5, True]}),
        ("/v1/faces/x/edits", {"strengths": {"age": False}}),
    ],
)
def test_numbers_in_bodies_are_strict(client: TestClient, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body, headers=api_key(client, "designer"))
    assert r.status_code == 400 and ("valid number" in r.text or "valid integer" in r.text), r.text


def test_exactly_one_of_outfit_id_and_image_id_is_in_the_schema(client: TestClient, doc: dict[str, Any]) -> None:
    schema = resolve(doc, doc["components"]["schemas"]["CatalogCreate"])
    headers = api_key(client, "designer")
    for body, valid in [
        ({"name": "x", "outfit_id": "o1"}, True),
        ({"name": "x", "image_id": "i1", "outfit_id": None}, True),
        ({"name": "x"}, False),
        ({"name": "x", "outfit_id": "o1", "image_id": "i1"}, False),
        ({"name": "x", "outfit_id": None, "image_id": None}, False),
    ]:
        assert jsonschema.Draft202012Validator(schema).is_valid(body) == valid, body
        status = client.post("/v1/catalog", json=body, headers=headers).status_code
        assert (status == 404) if valid else (status == 400), (body, status)  # 404: no such outfit / image.


def test_a_try_on_names_exactly_one_model_image_in_the_schema(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(resolve(doc, doc["components"]["schemas"]["TryOnCreate"]))
    assert validator.is_valid({"face_id": "f", "garment_id": "g", "outfit_id": None})
    assert not validator.is_valid({"face_id": "f"})
    assert not validator.is_valid({"face_id": "f", "outfit_id": "o", "catalog_id": "c"})


def test_uploads_are_documented_non_empty(doc: dict[str, Any]) -> None:
    for path in ("/v1/faces", "/v1/garments"):
        form = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert resolve(doc, form)["properties"]["file"]["minLength"] == 1


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `#/components/schemas/...` references inlined (for jsonschema)."""
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        return resolve(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    for key, value in list(schema.items()):
        if isinstance(value, dict):
            schema[key] = resolve(doc, value)
        elif isinstance(value, list):
            schema[key] = [resolve(doc, v) if isinstance(v, dict) else v for v in value]
    return schema
