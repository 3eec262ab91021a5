"""POST /v1/tryon with a shop product: an on-model product gets the face on its real photo (path
"photo", at the photo's resolution); a flat one is first worn by a generated model (garment transfer
on a tiny random fashion checkpoint; path "garment_transfer"). Real catalog photos, the real
`tryon.render` job with the shipped face generator."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import api_key, save_tiny_fashion_checkpoint
from test_tryon_api import make_face, make_outfit, session_of, wait_job

IMAGES = Path(__file__).parent / "data" / "fashion" / "images"
ON_MODEL = IMAGES / "10057.jpg"
FLAT = IMAGES / "10025.jpg"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_fashion_checkpoint(tmp_path_factory.mktemp("ckpt") / "fashion")


def import_product(client: TestClient, photo: Path, **attributes: str) -> dict[str, Any]:
    r = client.post("/v1/products", headers=api_key(client, "shop"),
                    files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
                    data={"attributes": json.dumps(attributes)})
    assert r.status_code == 201, r.text
    return dict(r.json())


def png(client: TestClient, url: str, headers: dict[str, str]) -> np.ndarray:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def test_an_on_model_product_gets_the_face_on_its_real_photo(client: TestClient) -> None:
    product = import_product(client, ON_MODEL, id="10057", gender="Men", articleType="Tshirts", baseColour="White")
    assert product["view"] == "on_model"
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "product_id": product["id"]})
    assert r.status_code == 202, r.text
    assert r.json()["path"] == "photo" and r.json()["product_id"] == product["id"]
    job = wait_job(client, r.json()["job"]["id"], alice)
    assert job["status"] == "succeeded", job
    assert job["result"]["path"] == "photo"
    done = client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json()
    assert done["path"] == "photo" and done["metrics"]["path"] == "photo"
    assert done["metrics"]["located"] != "canonical"          # The real photo's face was found and replaced.
    image = png(client, done["image"]["url"], alice)
    photo = png(client, product["photo"]["url"], alice)
    # The real photo, enlarged to the compositor's 512 px (a 224 px catalog photo), face replaced.
    assert image.shape == (512, 512, 3) and done["metrics"]["upscale"] == pytest.approx(512 / 224, abs=1e-3)
    photo = np.asarray(Image.fromarray(photo).resize((512, 512), Image.Resampling.LANCZOS))
    changed = np.abs(image.astype(int) - photo.astype(int)).max(axis=2) > 8
    ys, _ = np.nonzero(changed)
    assert changed.any() and ys.max() < 0.5 * photo.shape[0]  # The face changed; the garment did not.


def test_a_flat_product_is_worn_by_a_generated_model_first(client: TestClient) -> None:
    product = import_product(client, FLAT, id="10025", gender="Women", articleType="Tshirts", baseColour="Pink")
    assert product["view"] == "flat"
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "product_id": product["id"]})
    assert r.status_code == 202, r.text
    assert r.json()["path"] == "garment_transfer"
    job = wait_job(client, r.json()["job"]["id"], alice)
    assert job["status"] == "succeeded", job
    done = client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json()
    assert done["path"] == "garment_transfer"
    transfer = done["metrics"]["garment_transfer"]
    assert transfer["labels"]["view"] == "on_model" and transfer["labels"]["gender"] == "Women"  # The product's.
    assert png(client, done["image"]["url"], alice).shape == (512, 512, 3)  # A generated model, upscaled.

    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "product_id": product["id"],
                                                      "gender": "men"})
    assert r.status_code == 202, r.text                       # The shopper's chosen gender (any case).
    job = wait_job(client, r.json()["job"]["id"], alice)
    assert job["status"] == "succeeded", job
    assert job["result"]["metrics"]["garment_transfer"]["labels"]["gender"] == "Men"


def test_an_on_model_photo_without_a_face_is_worn_by_a_generated_model(client: TestClient) -> None:
    jeans = import_product(client, IMAGES / "11280.jpg", id="11280", gender="Men", articleType="Jeans",
                           baseColour="Black")
    assert jeans["view"] == "on_model"                         # Legs only: a person, but no face to replace.
    alice, alice_id = session_of(client)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": make_face(client, alice_id),
                                                      "product_id": jeans["id"]})
    assert r.status_code == 202, r.text
    assert r.json()["path"] == "garment_transfer"
    job = wait_job(client, r.json()["job"]["id"], alice)
    assert job["status"] == "succeeded", job


def test_bad_product_tryons_are_refused(client: TestClient) -> None:
    product = import_product(client, FLAT, id="10025", gender="Women", articleType="Tshirts", baseColour="Pink")
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "product_id": "nope"})
    assert r.status_code == 404
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "product_id": product["id"],
                                                      "gender": "Martians"})
    assert r.status_code == 400 and "Martians" in r.json()["detail"]
    outfit = make_outfit(client, alice)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "outfit_id": outfit["id"], "gender": "Men"})
    assert r.status_code == 400 and "product_id" in r.json()["detail"]
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "outfit_id": outfit["id"],
                                                      "product_id": product["id"]})
    assert r.status_code == 400 and "exactly one" in r.json()["detail"]
