"""POST /v1/tryon and GET /v1/tryon/{id} against the real app: a projected face (its latent stored
like the projection job stores it) onto an outfit of a tiny random fashion checkpoint, through the
real `tryon.render` job with the shipped face generator. Ownership (404), an unprojected face (409),
a flat outfit (422), bad requests (400), idempotency, and DELETE /v1/faces/{id} removing the result."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import save_tiny_fashion_checkpoint

from tryon.db import repositories as repo


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_fashion_checkpoint(tmp_path_factory.mktemp("ckpt") / "fashion")


def session_of(client: TestClient) -> tuple[dict[str, str], str]:
    """(headers, owner_id) of a new shopper session."""
    body = client.post("/v1/sessions").json()
    return {"Authorization": f"Bearer {body['token']}"}, body["owner_id"]


def make_face(
    client: TestClient,
    owner_id: str,
    *,
    projected: bool = True,
    shape: tuple[int, int] = (10, 128),
    seed: int = 0,
    photo: Image.Image | None = None,
) -> str:
    """A face row of `owner_id`, with a stored latent of the shipped face G (what `face.project` leaves)
    and, when given, its aligned photo at the photo's resolution (what the upload stores)."""
    from tryon.db.models import ImageKind
    from tryon.face.latent import FaceLatent
    from tryon.services.storage import save_image

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:
        face = repo.create_face(session, owner_id=owner_id, alignment={"faces_found": 1})
        if photo is not None:
            save_image(session, blobs=runtime.blobs, owner_id=owner_id, image=photo, kind=ImageKind.FACE_ALIGNED_HR,
                       face_id=face.id)
        if projected:
            latent = FaceLatent(ws=np.random.default_rng(seed).normal(0, 0.3, shape).astype(np.float32))
            blob = repo.store_blob(
                session, blobs=runtime.blobs, data=latent.to_bytes(), media_type="application/x-npz"
            )
            face.latent_sha256 = blob.sha256
            face.status = "projected"
        else:
            face.status = "projecting"
        return str(face.id)


def wait_job(client: TestClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(10):  # Long polls of up to 30 s each.
        job = client.get(f"/v1/jobs/{job_id}?wait=30", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            break
    return dict(job)


def make_outfit(client: TestClient, headers: dict[str, str], view: str = "on_model") -> dict[str, Any]:
    r = client.post(
        "/v1/outfits", headers=headers, json={"category": "Shirts", "colour": "blue", "view": view, "seed": 3}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_tryon_is_rendered_stored_and_deleted_with_its_face(client: TestClient) -> None:
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    outfit = make_outfit(client, alice)
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "outfit_id": outfit["id"]})
    assert r.status_code == 202, r.text
    tryon = r.json()
    assert tryon["status"] in ("queued", "running", "succeeded") and tryon["job"]["kind"] == "tryon.render"
    job = wait_job(client, tryon["job"]["id"], alice)
    assert job["status"] == "succeeded", job
    assert job["result"]["tryon_id"] == tryon["id"]

    done = client.get(f"/v1/tryon/{tryon['id']}", headers=alice).json()
    assert done["status"] == "succeeded" and done["image"]["id"] == job["result"]["image"]["id"]
    assert done["outfit_id"] == outfit["id"] and done["face_id"] == face_id
    # A 16 px generation has no face the mesh can find: the pose-normalized head position is used, and said.
    assert done["metrics"]["located"] == "canonical" and any("head position" in n for n in done["notes"])
    png = client.get(done["image"]["url"], headers=alice)
    assert png.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"))
    assert image.shape == (512, 512, 3)  # Upscaled from 16 px before compositing.
    outfit_png = client.get(outfit["image"]["url"], headers=alice).content
    model = np.asarray(Image.open(io.BytesIO(outfit_png)).convert("RGB").resize((512, 512), Image.Resampling.LANCZOS))
    changed = np.abs(image.astype(int) - model.astype(int)).max(axis=2) > 8
    ys, _ = np.nonzero(changed)
    assert changed.any() and ys.max() < 0.35 * 512  # The face went to the head, nothing below the neck changed.

    face_images = client.get(f"/v1/faces/{face_id}", headers=alice).json()["images"]
    assert done["image"]["id"] in [img["id"] for img in face_images]
    assert client.delete(f"/v1/faces/{face_id}", headers=alice).status_code == 204
    assert client.get(f"/v1/tryon/{tryon['id']}", headers=alice).status_code == 404
    assert client.get(done["image"]["url"], headers=alice).status_code == 404


SHARED_PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "face_photos" / "obama.jpg"


@pytest.mark.skipif(not SHARED_PHOTO.is_file(), reason=f"{SHARED_PHOTO} is absent (a real face photo)")
def test_the_render_job_shows_the_stored_photo(client: TestClient) -> None:
    from tryon.face.align import align_face, photo_res, realign
    from tryon.vision.io import load_image

    source = load_image(SHARED_PHOTO)
    aligned = align_face(source, 256)[0]
    photo = realign(source, aligned, photo_res(aligned))
    alice, alice_id = session_of(client)
    outfit = make_outfit(client, alice)
    results = {}
    faces = {"photo": make_face(client, alice_id, photo=photo), "generator": make_face(client, alice_id)}
    for kind, face_id in faces.items():
        r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "outfit_id": outfit["id"]})
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["job"]["id"], alice)
        assert job["status"] == "succeeded", job
        results[kind] = job["result"]
        assert job["result"]["metrics"]["face"] == kind
        png = client.get(job["result"]["image"]["url"], headers=alice).content
        results[kind]["pixels"] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert any("generator" in n for n in results["generator"]["notes"])
    assert not any("generator" in n for n in results["photo"]["notes"])
    # Same latent, same model: only the face source differs, and it shows.
    diff = np.abs(results["photo"]["pixels"].astype(int) - results["generator"]["pixels"].astype(int)).max(axis=2)
    assert (diff > 8).mean() > 0.002


def test_tryon_checks_ownership_projection_and_the_model(client: TestClient) -> None:
    alice, alice_id = session_of(client)
    bob, bob_id = session_of(client)
    face_id = make_face(client, alice_id)
    outfit = make_outfit(client, alice)

    def post(headers: dict[str, str], **body: Any) -> Any:
        return client.post("/v1/tryon", headers=headers, json=body)

    r = post(bob, face_id=face_id, outfit_id=outfit["id"])
    assert r.status_code == 404 and "face" in r.json()["detail"]  # Not bob's face.
    r = post(bob, face_id=make_face(client, bob_id), outfit_id=outfit["id"])
    assert r.status_code == 404 and "outfit" in r.json()["detail"]  # Not bob's outfit.
    r = post(alice, face_id=make_face(client, alice_id, projected=False), outfit_id=outfit["id"])
    assert r.status_code == 409 and "not projected" in r.json()["detail"]
    r = post(alice, face_id=face_id, outfit_id=make_outfit(client, alice, view="flat")["id"])
    assert r.status_code == 422 and "flat" in r.json()["detail"]
    r = post(alice, face_id=face_id)
    assert r.status_code == 400 and "exactly one" in r.json()["detail"]
    r = post(alice, face_id=face_id, outfit_id=outfit["id"], catalog_id="x")
    assert r.status_code == 400
    r = post(alice, face_id=face_id, catalog_id="no-such-item")
    assert r.status_code == 404
    r = post(alice, face_id=face_id, garment_id="no-such-garment")
    assert r.status_code == 404
    r = post(alice, face_id=face_id, outfit_id=outfit["id"], edits={"strengths": {"wings": 1.0}})
    assert r.status_code == 400 and "wings" in r.json()["detail"]
    assert client.get("/v1/tryon/nope", headers=alice).status_code == 404


def test_an_idempotency_key_returns_the_first_tryon(client: TestClient) -> None:
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    outfit = make_outfit(client, alice)
    body = {"face_id": face_id, "outfit_id": outfit["id"]}
    headers = {**alice, "Idempotency-Key": "try-1"}
    first = client.post("/v1/tryon", headers=headers, json=body)
    again = client.post("/v1/tryon", headers=headers, json=body)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/tryon", headers=headers, json={**body, "edits": {"strengths": {"smile": 0.5}}})
    assert other.status_code == 409
    wait_job(client, first.json()["job"]["id"], alice)  # Let it finish before teardown.


def test_junk_gets_4xx_never_5xx(client: TestClient) -> None:
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id)
    bodies: list[dict[str, Any]] = [
        {},
        {"json": {"face_id": 3, "outfit_id": ["x"]}},
        {"json": [1, 2]},
        {"json": {"face_id": "ü" * 300, "outfit_id": "x"}},
        {"json": {"face_id": face_id, "outfit_id": "../../etc/passwd", "edits": {"strengths": {"age": "old"}}}},
        {"json": {"face_id": face_id, "garment_id": "%00", "edits": {"instruction": "fly like a bird"}}},
        {"json": {"face_id": face_id, "catalog_id": "0" * 32, "extra": 1}},
        {"content": b"\x00\xff" * 10, "headers": {"Content-Type": "application/json"}},
    ]
    for body in bodies:
        extra = dict(body)
        headers = {**alice, **extra.pop("headers", {})}
        r = client.post("/v1/tryon", headers=headers, **extra)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert r.json()["detail"]
    for ident in ("x", "0" * 32, "%00", "ü" * 300, "../../etc/passwd"):
        r = client.get(f"/v1/tryon/{ident}", headers=alice)
        assert 400 <= r.status_code < 500, (ident, r.status_code, r.text)
    assert client.post("/v1/tryon", json={"face_id": face_id, "outfit_id": "x"}).status_code == 401


def test_catalog_items_and_garments_can_be_tried_on(client: TestClient) -> None:
    from tryon.db.models import CatalogItem

    alice, alice_id = session_of(client)
    bob, bob_id = session_of(client)
    outfit = make_outfit(client, alice)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:
        # A catalog item of alice's (the shared catalog belongs to its maker; everyone may try it on).
        item = CatalogItem(
            owner_id=alice_id, name="blue shirt", source="designer", labels={"view": "on_model"}, view="on_model",
            image_id=outfit["image"]["id"], outfit_id=outfit["id"],
        )  # fmt: skip
        session.add(item)
        photo = repo.create_image(
            session, blobs=runtime.blobs, owner_id=bob_id, data=b"\x89PNG fake", media_type="image/png",
            width=1, height=1, kind="garment_photo",
        )  # fmt: skip
        waiting = repo.create_garment(session, owner_id=bob_id, photo_image_id=photo.id)
        ready = repo.create_garment(session, owner_id=bob_id, photo_image_id=photo.id)
        ready.on_model_image_id, ready.status = outfit["image"]["id"], "transferred"
        item_id, waiting_id, ready_id = item.id, waiting.id, ready.id
    face_id = make_face(client, bob_id)

    r = client.post("/v1/tryon", headers=bob, json={"face_id": face_id, "catalog_id": item_id})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job"]["id"], bob)
    assert job["status"] == "succeeded", job
    done = client.get(f"/v1/tryon/{r.json()['id']}", headers=bob).json()
    assert done["catalog_id"] == item_id and done["outfit_id"] == outfit["id"] and done["image"] is not None
    assert client.get(done["image"]["url"], headers=bob).status_code == 200
    assert client.get(done["image"]["url"], headers=alice).status_code == 404  # Bob's face, bob's image.

    r = client.post("/v1/tryon", headers=bob, json={"face_id": face_id, "garment_id": waiting_id})
    assert r.status_code == 409 and "not on a model yet" in r.json()["detail"]
    r = client.post("/v1/tryon", headers=alice, json={"face_id": make_face(client, alice_id), "garment_id": ready_id})
    assert r.status_code == 404  # Bob's garment.
    r = client.post("/v1/tryon", headers=bob, json={"face_id": face_id, "garment_id": ready_id})
    assert r.status_code == 202 and r.json()["garment_id"] == ready_id
    assert wait_job(client, r.json()["job"]["id"], bob)["status"] == "succeeded"


def test_a_failed_render_says_why(client: TestClient) -> None:
    alice, alice_id = session_of(client)
    face_id = make_face(client, alice_id, shape=(3, 16))  # A latent of another generator.
    outfit_id = make_outfit(client, alice)["id"]
    r = client.post("/v1/tryon", headers=alice, json={"face_id": face_id, "outfit_id": outfit_id})
    job = wait_job(client, r.json()["job"]["id"], alice)
    assert job["status"] == "failed" and job["attempts"] == 1  # A user error: not retried.
    done = client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json()
    assert done["status"] == "failed" and done["image"] is None and "another model" in done["error"]


def test_a_tryon_of_an_edit_uses_its_latent_and_goes_with_the_face_it_borrowed_from(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    alice, alice_id = session_of(client)
    a, b = make_face(client, alice_id, seed=1), make_face(client, alice_id, seed=2)
    outfit = make_outfit(client, alice)
    r = client.post(f"/v1/faces/{a}/edits", headers=alice, json={"mix": {"face_id": b, "groups": ["coarse", "middle"]}})
    assert r.status_code == 201, r.text
    edit_id = r.json()["id"]

    def tryon(**edits: Any) -> dict[str, Any]:
        r = client.post("/v1/tryon", headers=alice, json={"face_id": a, "outfit_id": outfit["id"], "edits": edits})
        assert r.status_code == 202, r.text
        assert wait_job(client, r.json()["job"]["id"], alice)["status"] == "succeeded"
        return dict(client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json())

    plain, mixed = tryon(), tryon(edit_id=edit_id)
    assert mixed["edits"]["edit_id"] == edit_id and "edit_id" not in plain["edits"]
    assert [t["id"] for t in client.get("/v1/tryon", headers=alice).json()] == [mixed["id"], plain["id"]]
    assert [t["id"] for t in client.get("/v1/tryon?limit=1", headers=alice).json()] == [mixed["id"]]
    assert client.get("/v1/tryon?limit=0", headers=alice).status_code in (400, 422)
    pixels = [np.asarray(Image.open(io.BytesIO(client.get(t["image"]["url"], headers=alice).content)), np.float32)
              for t in (plain, mixed)]
    changed = (np.abs(pixels[0] - pixels[1]).max(axis=2) > 10).mean()
    assert changed > 0.002, changed  # Another face was composited (the face is a small part of the picture).

    # An edit of another face, or someone else's, is not found; it must exist before the job is queued.
    bob, bob_id = session_of(client)
    for headers, face in ((alice, make_face(client, alice_id, seed=3)), (bob, make_face(client, bob_id, seed=4))):
        bob_outfit = make_outfit(client, headers)
        body = {"face_id": face, "outfit_id": bob_outfit["id"], "edits": {"edit_id": edit_id}}
        r = client.post("/v1/tryon", headers=headers, json=body)
        assert r.status_code == 404 and edit_id in r.json()["detail"], r.text

    # Deleting b deletes the edit that borrowed from it and the try-on made from that edit, not the plain one.
    assert client.delete(f"/v1/faces/{b}", headers=alice).status_code == 204
    assert client.get(f"/v1/tryon/{mixed['id']}", headers=alice).status_code == 404
    assert client.get(mixed["image"]["url"], headers=alice).status_code == 404
    assert client.get(f"/v1/tryon/{plain['id']}", headers=alice).json()["status"] == "succeeded"
    with runtime.database.sessions() as session:
        assert repo.get_edit(session, edit_id=edit_id, owner_id=alice_id) is None


def test_deleting_an_edit_deletes_the_edits_stacked_on_it_and_their_tryons(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    alice, alice_id = session_of(client)
    face = make_face(client, alice_id, seed=1)
    outfit = make_outfit(client, alice)
    edits_url = f"/v1/faces/{face}/edits"

    def edit(**body: Any) -> dict[str, Any]:
        r = client.post(edits_url, headers=alice, json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def tryon(edit_id: str) -> dict[str, Any]:
        body = {"face_id": face, "outfit_id": outfit["id"], "edits": {"edit_id": edit_id}}
        r = client.post("/v1/tryon", headers=alice, json=body)
        assert r.status_code == 202, r.text
        assert wait_job(client, r.json()["job"]["id"], alice)["status"] == "succeeded"
        return dict(client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json())

    smile = edit(strengths={"smile": 1})
    older = edit(base_edit_id=smile["id"], strengths={"age": 5})
    glasses = edit(base_edit_id=older["id"], strengths={"glasses": 1})
    other = edit(strengths={"age": -5})
    doomed_tryon, kept_tryon = tryon(glasses["id"]), tryon(other["id"])
    with runtime.database.sessions() as session:
        latents = {e["id"]: repo.get_edit(session, edit_id=e["id"], owner_id=alice_id).latent_sha256
                   for e in (smile, older, glasses, other)}

    bob, _ = session_of(client)
    assert client.delete(f"{edits_url}/{smile['id']}", headers=bob).status_code == 404
    assert client.delete(f"{edits_url}/{smile['id']}", headers=alice).status_code == 204
    assert [e["id"] for e in client.get(edits_url, headers=alice).json()] == [other["id"]]
    for gone in (smile, older, glasses):
        assert client.get(gone["image"]["url"], headers=alice).status_code == 404
        assert not runtime.blobs.exists(latents[gone["id"]])
    assert client.get(f"/v1/tryon/{doomed_tryon['id']}", headers=alice).status_code == 404
    assert client.get(doomed_tryon["image"]["url"], headers=alice).status_code == 404
    # The face, its other edit and that edit's try-on stay.
    assert client.get(f"/v1/faces/{face}", headers=alice).status_code == 200
    assert runtime.blobs.exists(latents[other["id"]])
    assert client.get(f"/v1/tryon/{kept_tryon['id']}", headers=alice).json()["status"] == "succeeded"
    r = client.delete(f"{edits_url}/{smile['id']}", headers=alice)
    assert r.status_code == 404 and smile["id"] in r.json()["detail"], r.text


def test_deleting_a_tryon_deletes_its_image_and_nothing_else(client: TestClient) -> None:
    from tryon.db.models import Image as ImageRow

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    alice, alice_id = session_of(client)
    face = make_face(client, alice_id, seed=1)
    outfit = make_outfit(client, alice)
    made = []
    for _ in range(2):  # The same request twice: the same pixels, stored once.
        r = client.post("/v1/tryon", headers=alice, json={"face_id": face, "outfit_id": outfit["id"]})
        assert wait_job(client, r.json()["job"]["id"], alice)["status"] == "succeeded"
        made.append(client.get(f"/v1/tryon/{r.json()['id']}", headers=alice).json())
    gone, kept = made
    with runtime.database.sessions() as session:
        (sha,) = {session.get(ImageRow, t["image"]["id"]).blob_sha256 for t in made}

    bob, _ = session_of(client)
    assert client.delete(f"/v1/tryon/{gone['id']}", headers=bob).status_code == 404
    assert client.delete(f"/v1/tryon/{gone['id']}", headers=alice).status_code == 204
    assert client.get(f"/v1/tryon/{gone['id']}", headers=alice).status_code == 404
    assert client.get(gone["image"]["url"], headers=alice).status_code == 404
    assert [t["id"] for t in client.get("/v1/tryon", headers=alice).json()] == [kept["id"]]
    assert client.get(f"/v1/faces/{face}", headers=alice).status_code == 200
    r = client.delete(f"/v1/tryon/{gone['id']}", headers=alice)
    assert r.status_code == 404 and gone["id"] in r.json()["detail"], r.text
    # The file goes with its last reference.
    assert runtime.blobs.exists(sha) and client.get(kept["image"]["url"], headers=alice).status_code == 200
    assert client.delete(f"/v1/tryon/{kept['id']}", headers=alice).status_code == 204
    assert not runtime.blobs.exists(sha)
