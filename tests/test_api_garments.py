"""POST /v1/garments -> a `garment.transfer` job -> GET /v1/garments/{id} with the flat projection,
the garment on a model, its outfit and metrics. Upload checks shared with face photos; a photo
without a garment is 422; ownership; idempotency keys."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import api_key, png_bytes, service_settings, shopper

from tryon.api import create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def garment_png() -> bytes:
    photo = Image.new("RGB", (90, 120), (250, 250, 250))
    photo.paste((200, 30, 40), (15, 20, 75, 100))
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    return buf.getvalue()


def upload(client: TestClient, headers: dict[str, str], data: bytes, **form: str) -> object:
    return client.post("/v1/garments", headers=headers, files={"file": ("g.png", data, "image/png")}, data=form)


def designer(client: TestClient) -> dict[str, str]:
    return api_key(client, "designer")


def test_a_garment_is_put_on_a_model(client: TestClient) -> None:
    alice, bob = designer(client), designer(client)
    r = upload(client, alice, garment_png(), steps="4", gender="women", seed="2")
    assert r.status_code == 202, r.text  # type: ignore[attr-defined]
    garment = r.json()  # type: ignore[attr-defined]
    assert garment["status"] in ("queued", "transferring") and garment["photo"]["kind"] == "garment_photo"
    assert garment["job"]["kind"] == "garment.transfer" and garment["flat"] is None
    job = client.get(f"/v1/jobs/{garment['job']['id']}?wait=30", headers=alice).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["garment_id"] == garment["id"] and set(result["metrics"]) >= {"colour_distance", "seconds"}
    done = client.get(f"/v1/garments/{garment['id']}", headers=alice).json()
    assert done["status"] == "transferred" and done["on_model"]["id"] == result["on_model"]["id"]
    assert done["labels"]["view"] == "flat" and done["labels"]["gender"] == "Women"
    assert "colour_distance" in done["metrics"] and "category_agreement" in done["metrics"]
    for image in (done["flat"], done["on_model"]):
        png = client.get(image["url"], headers=alice)
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (16, 16)
    outfit = client.get(f"/v1/outfits/{done['outfit_id']}", headers=alice).json()
    assert outfit["labels"]["view"] == "on_model" and outfit["seed"] == 2
    assert client.get(f"/v1/garments/{garment['id']}", headers=bob).status_code == 404
    assert client.get(done["on_model"]["url"], headers=bob).status_code == 404
    assert [g["id"] for g in client.get("/v1/garments", headers=alice).json()] == [garment["id"]]
    assert client.get("/v1/garments", headers=bob).json() == []
    assert [o["id"] for o in client.get("/v1/outfits", headers=alice).json()] == [done["outfit_id"]]


@pytest.mark.parametrize(
    ("data", "form", "status", "phrase"),
    [
        (png_bytes(color=(255, 255, 255)), {}, 422, "no garment found"),
        (b"just some text", {}, 415, "a text file"),
        (b"", {}, 400, "empty"),
        (garment_png()[:60], {}, 400, ""),
        (garment_png(), {"gender": "robot"}, 400, "its values are: Men, Women"),
        (garment_png(), {"steps": "0"}, 400, "steps"),
    ],
)
def test_bad_uploads(client: TestClient, data: bytes, form: dict[str, str], status: int, phrase: str) -> None:
    r = upload(client, designer(client), data, **form)
    assert r.status_code == status and phrase in r.json()["detail"], r.text  # type: ignore[attr-defined]


def test_idempotency_key_returns_the_first_garment(client: TestClient) -> None:
    h = {**designer(client), "Idempotency-Key": "garment-1"}
    first = upload(client, h, garment_png(), steps="1").json()  # type: ignore[attr-defined]
    again = upload(client, h, garment_png(), steps="1")
    assert again.status_code == 200 and again.json()["id"] == first["id"]  # type: ignore[attr-defined]
    other = upload(client, h, garment_png(), steps="2")
    assert other.status_code == 409  # type: ignore[attr-defined]


def test_a_shopper_session_may_not_start_a_transfer(client: TestClient) -> None:
    """A transfer is up to 500 optimisation steps: the designer scope, as the README says; a shopper
    (or a `shop` key) still reads its garments."""
    for headers in (shopper(client), api_key(client, "shop")):
        r = upload(client, headers, garment_png(), steps="1")
        assert r.status_code == 403 and "'designer' scope" in r.json()["detail"], r.text  # type: ignore[attr-defined]
        assert client.get("/v1/garments", headers=headers).json() == []


def test_jobs_at_once_are_capped_per_caller(tmp_path: Path, checkpoint: Path) -> None:
    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, max_active_jobs_per_caller=2)
    with TestClient(create_app(settings, in_process_workers=0)) as client:  # Nothing runs: jobs stay queued.
        alice, bob = designer(client), designer(client)
        for _ in range(2):
            assert upload(client, alice, garment_png(), steps="1").status_code == 202  # type: ignore[attr-defined]
        r = upload(client, alice, garment_png(), steps="1")
        assert r.status_code == 429 and r.headers["Retry-After"].isdigit(), r.text  # type: ignore[attr-defined]
        assert "2 queued or running" in r.json()["detail"]  # type: ignore[attr-defined]
        assert len(client.get("/v1/garments", headers=alice).json()) == 2  # Nothing stored for the refusal.
        async_outfit = {**alice, "Prefer": "respond-async"}
        outfit = client.post("/v1/outfits", json={"view": "on_model", "seed": 1}, headers=async_outfit)
        assert outfit.status_code == 429, outfit.text  # Every job kind counts.
        assert upload(client, bob, garment_png(), steps="1").status_code == 202  # type: ignore[attr-defined]
