"""GET /v1/edits/directions, POST/GET /v1/faces/{id}/edits against the real app (SQLite, in-process job
workers), with a tiny face generator: an uploaded face is projected by its `face.project` job, then
edited; edits are the owner's alone, unknown names and words get 400, an unprojected face 409, and
deleting the face removes the edited images and latents from disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import FACE_PHOTO, service_settings, shopper
from test_face_edits import save_tiny_face_checkpoint

from tryon.api import create_app
from tryon.face import EDIT_NAMES
from tryon.face.models import FEATURES_DIR, load_face_models


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.face_directions import fit_face_directions

    directory = save_tiny_face_checkpoint(tmp_path_factory.mktemp("face") / "tiny")
    models = load_face_models(directory, encoder=False, classifier=FEATURES_DIR)
    fit_face_directions(models, num_samples=200, probe=4).save(directory / "directions")
    return directory


@pytest.fixture
def client(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[TestClient]:
    from tryon.services.face import FaceService

    settings = service_settings(tmp_path)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        runtime = c.app.state.runtime  # type: ignore[attr-defined]
        runtime.services.face = FaceService(checkpoint=tiny_checkpoint, steps=2)
        yield c


def projected_face(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Upload the test photo and wait for its projection job."""
    with FACE_PHOTO.open("rb") as f:
        r = client.post("/v1/faces", headers=headers, files={"file": ("me.jpg", f.read(), "image/jpeg")})
    assert r.status_code == 201, r.text
    face = r.json()
    job = face["projection_job"]
    assert job is not None, "the face.project job is not registered"
    r = client.get(f"/v1/jobs/{job['id']}?wait=30", headers=headers)
    assert r.json()["status"] == "succeeded", r.text
    face = client.get(f"/v1/faces/{face['id']}", headers=headers).json()
    assert face["status"] == "projected"
    return face


def test_directions(client: TestClient) -> None:
    r = client.get("/v1/edits/directions")
    assert r.status_code == 200, r.text
    body = r.json()
    names = [d["name"] for d in body["directions"]]
    assert names[:4] == ["age", "gender", "smile", "pose"] and set(names) == set(EDIT_NAMES)
    age = next(d for d in body["directions"] if d["name"] == "age")
    assert age["range"] == [-15, 15] and age["kind"] == "attribute" and age["description"]
    assert {"older", "no", "a bit"} <= set(body["instruction_words"])
    assert body["layer_groups"] == {"coarse": [0, 3], "middle": [3, 5], "fine": [5, 6]}


def test_edit_a_projected_face(client: TestClient) -> None:
    alice, bob = shopper(client), shopper(client)
    face = projected_face(client, alice)
    url = f"/v1/faces/{face['id']}/edits"

    r = client.post(url, headers=alice, json={"strengths": {"age": 10}, "instruction": "smiling, no glasses"})
    assert r.status_code == 201, r.text
    edit = r.json()
    assert edit["face_id"] == face["id"]
    assert edit["strengths"] == {"smile": 1.0, "glasses": -1.0, "age": 10.0}
    assert edit["instruction"] == "smiling, no glasses"
    img = client.get(edit["image"]["url"], headers=alice)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert (edit["image"]["width"], edit["image"]["height"]) == (16, 16) and edit["image"]["kind"] == "face_edit"

    r = client.post(url, headers=alice, json={"strengths": {"pose": -0.5}, "keep": ["gender"]})
    assert r.status_code == 201 and r.json()["keep"] == ["gender"]
    listed = client.get(url, headers=alice).json()
    assert listed[0]["id"] == edit["id"] and len(listed) == 2
    kinds = [i["kind"] for i in client.get(f"/v1/faces/{face['id']}", headers=alice).json()["images"]]
    assert kinds.count("face_edit") == 2

    # Bob can neither edit nor list Alice's face, nor see the edited image.
    assert client.post(url, headers=bob, json={"strengths": {"age": 1}}).status_code == 404
    assert client.get(url, headers=bob).status_code == 404
    assert client.get(edit["image"]["url"], headers=bob).status_code == 404

    # Deleting the face deletes the edits' images and latents, on disk too.
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert client.delete(f"/v1/faces/{face['id']}", headers=alice).status_code == 204
    assert client.get(edit["image"]["url"], headers=alice).status_code == 404
    assert client.get(url, headers=alice).status_code == 404
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []


def latent_of(client: TestClient, model: type, row_id: str) -> Any:
    """The FaceLatent stored for a Face or Edit row."""
    from tryon.face.latent import FaceLatent

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        sha = session.get(model, row_id).latent_sha256
    return FaceLatent.from_bytes(runtime.blobs.get(sha))


def test_mix_layer_groups_of_another_face(client: TestClient) -> None:
    from tryon.db.models import Edit, Face

    h = shopper(client)
    a, b = projected_face(client, h), projected_face(client, h)

    la, lb = latent_of(client, Face, a["id"]), latent_of(client, Face, b["id"])
    r = client.post(f"/v1/faces/{a['id']}/edits", headers=h, json={"mix": {"face_id": b["id"], "groups": ["fine"]}})
    assert r.status_code == 201, r.text
    edit = r.json()
    assert edit["mix"] == {"face_id": b["id"], "groups": ["fine"]} and edit["strengths"] == {}
    mixed = latent_of(client, Edit, edit["id"])
    from tryon.face.directions import layer_groups

    start = layer_groups(la.num_ws)["fine"][0]
    assert (mixed.ws[start:] == lb.ws[start:]).all() and (mixed.ws[:start] == la.ws[:start]).all()

    # Mixing and an edit in one request: the edit moves the mixed latent.
    r = client.post(f"/v1/faces/{a['id']}/edits", headers=h,
                    json={"mix": {"face_id": b["id"], "groups": ["coarse", "middle", "fine"]}, "strengths": {"age": 5}})
    assert r.status_code == 201, r.text
    both = latent_of(client, Edit, r.json()["id"])
    assert not (both.ws == lb.ws).all() and r.json()["strengths"] == {"age": 5.0}

    # Someone else's face is not found; an unknown group is a 400.
    other = projected_face(client, shopper(client))
    r = client.post(f"/v1/faces/{a['id']}/edits", headers=h, json={"mix": {"face_id": other["id"]}})
    assert r.status_code == 404, r.text
    r = client.post(f"/v1/faces/{a['id']}/edits", headers=h, json={"mix": {"face_id": b["id"], "groups": ["hair"]}})
    assert r.status_code == 400 and "mix.groups" in r.json()["detail"], r.text
    assert len(client.get(f"/v1/faces/{a['id']}/edits", headers=h).json()) == 2
    # Both edits hold part of face b: deleting b deletes them.
    assert client.delete(f"/v1/faces/{b['id']}", headers=h).status_code == 204
    assert client.get(f"/v1/faces/{a['id']}/edits", headers=h).json() == []


def test_compose_a_region_of_another_face_and_delete_the_donor(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    h = shopper(client)
    a, b = projected_face(client, h), projected_face(client, h)
    body = {"face_id": b["id"], "region": "eyes", "steps": 3}
    r = client.post(f"/v1/faces/{a['id']}/compositions", headers={**h, "Idempotency-Key": "k1"}, json=body)
    assert r.status_code == 202, r.text
    edit = r.json()
    assert edit["compose"] == body and edit["job"]["kind"] == "face.compose" and edit["status"] in ("queued", "running")
    again = client.post(f"/v1/faces/{a['id']}/compositions", headers={**h, "Idempotency-Key": "k1"}, json=body)
    assert again.status_code == 200 and again.json()["id"] == edit["id"]

    job = client.get(f"/v1/jobs/{edit['job']['id']}?wait=30", headers=h).json()
    assert job["status"] == "succeeded", job
    (listed,) = client.get(f"/v1/faces/{a['id']}/edits", headers=h).json()
    assert listed["id"] == edit["id"] and listed["status"] == "succeeded"
    assert client.get(f"/v1/faces/{a['id']}/edits/{edit['id']}", headers=h).json() == listed
    for face_id, headers in ((b["id"], h), (a["id"], shopper(client))):  # Another face's edit; someone else.
        r = client.get(f"/v1/faces/{face_id}/edits/{edit['id']}", headers=headers)
        assert r.status_code == 404, r.text
    assert set(listed["metrics"]) >= {"psnr_inside", "psnr_outside"} and listed["image"]["kind"] == "face_edit"
    assert client.get(listed["image"]["url"], headers=h).status_code == 200

    # The composition holds part of face b: deleting b deletes it (image and latent) from a's edits.
    from tryon.db.models import Edit, Image

    with runtime.database.sessions() as session:
        shas = {session.get(Edit, edit["id"]).latent_sha256, session.get(Image, listed["image"]["id"]).blob_sha256}
    assert all(runtime.blobs.exists(sha) for sha in shas)
    assert client.delete(f"/v1/faces/{b['id']}", headers=h).status_code == 204
    assert client.get(f"/v1/faces/{a['id']}/edits", headers=h).json() == []
    assert client.get(listed["image"]["url"], headers=h).status_code == 404
    assert not any(runtime.blobs.exists(sha) for sha in shas)
    assert client.delete(f"/v1/faces/{a['id']}", headers=h).status_code == 204
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []


def test_an_edit_stacks_on_an_earlier_edit_and_goes_with_what_that_one_borrowed(client: TestClient) -> None:
    import numpy as np

    from tryon.db.models import Edit, Face

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    h = shopper(client)
    a, b = projected_face(client, h), projected_face(client, h)
    url = f"/v1/faces/{a['id']}/edits"
    # (a and b are projections of one photo: the smile makes the base differ from the projection.)
    mix = {"face_id": b["id"], "groups": ["fine"]}
    mixed = client.post(url, headers=h, json={"mix": mix, "instruction": "smiling"}).json()
    plain = client.post(url, headers=h, json={"strengths": {"age": 5}}).json()
    r = client.post(url, headers=h, json={"base_edit_id": mixed["id"], "strengths": {"age": 5}})
    assert r.status_code == 201, r.text
    stacked = r.json()
    assert stacked["base_edit_id"] == mixed["id"] and stacked["strengths"] == {"age": 5.0} and stacked["mix"] is None
    assert plain["base_edit_id"] is None and mixed["strengths"] == {"smile": 1.0}
    # The same move as on the projection, from the mixed latent.
    la, lm = latent_of(client, Face, a["id"]), latent_of(client, Edit, mixed["id"])
    ls, lp = latent_of(client, Edit, stacked["id"]), latent_of(client, Edit, plain["id"])
    assert np.abs(ls.ws - lm.ws).max() > 1e-3 and np.abs(lm.ws - la.ws).max() > 1e-3
    np.testing.assert_allclose(ls.ws - lm.ws, lp.ws - la.ws, atol=1e-5)
    # Stacking again keeps the history of strengths.
    r = client.post(url, headers=h, json={"base_edit_id": stacked["id"], "strengths": {"glasses": 1}})
    assert r.status_code == 201, r.text
    history = [e["strengths"] for e in latent_of(client, Edit, r.json()["id"]).meta["edits"]]
    assert history == [{"smile": 1.0}, {"age": 5.0}, {"glasses": 1.0}]

    # An edit of another face (or nobody's) is not found; one not made yet is a 409.
    other = client.post(f"/v1/faces/{b['id']}/edits", headers=h, json={"strengths": {"age": 1}}).json()
    for edit_id in (other["id"], "e_nobody"):
        r = client.post(url, headers=h, json={"base_edit_id": edit_id, "strengths": {"age": 1}})
        assert r.status_code == 404 and edit_id in r.json()["detail"], r.text
    with runtime.database.sessions.begin() as session:
        row = session.get(Edit, mixed["id"])
        pending = Edit(owner_id=row.owner_id, face_id=a["id"], params={}, image_id=None, latent_sha256=None)
        session.add(pending)
        session.flush()
        pending_id = pending.id
    r = client.post(url, headers=h, json={"base_edit_id": pending_id, "strengths": {"age": 1}})
    assert r.status_code == 409 and "not made yet" in r.json()["detail"], r.text

    # The stacked edits hold part of face b through the mix: deleting b deletes them, not the plain edit.
    assert client.delete(f"/v1/faces/{b['id']}", headers=h).status_code == 204
    assert {e["id"] for e in client.get(url, headers=h).json()} == {plain["id"], pending_id}


def test_a_composition_into_an_earlier_edit(client: TestClient) -> None:
    import numpy as np

    from tryon.db.models import Edit

    h = shopper(client)
    a, b, c = (projected_face(client, h) for _ in range(3))
    url = f"/v1/faces/{a['id']}/compositions"
    mixed = client.post(f"/v1/faces/{a['id']}/edits", headers=h,
                        json={"mix": {"face_id": b["id"], "groups": ["fine"]}, "instruction": "smiling"}).json()

    def compose(**extra: Any) -> dict[str, Any]:
        r = client.post(url, headers=h, json={"face_id": c["id"], "region": "eyes", "steps": 3, **extra})
        assert r.status_code == 202, r.text
        job = client.get(f"/v1/jobs/{r.json()['job']['id']}?wait=30", headers=h).json()
        assert job["status"] == "succeeded", job
        return dict(r.json())

    plain, stacked = compose(), compose(base_edit_id=mixed["id"])
    assert stacked["base_edit_id"] == mixed["id"] and plain["base_edit_id"] is None
    assert stacked["compose"] == {"face_id": c["id"], "region": "eyes", "steps": 3}
    lp, ls = latent_of(client, Edit, plain["id"]), latent_of(client, Edit, stacked["id"])
    assert np.abs(lp.ws - ls.ws).max() > 1e-3, "composed into the mixed, smiling face, not the projection"

    r = client.post(url, headers=h, json={"face_id": c["id"], "region": "eyes", "base_edit_id": "e_nobody"})
    assert r.status_code == 404 and "e_nobody" in r.json()["detail"], r.text
    # The stacked composition holds part of b (through the mix) and of c: deleting b deletes it.
    assert client.delete(f"/v1/faces/{b['id']}", headers=h).status_code == 204
    assert [e["id"] for e in client.get(f"/v1/faces/{a['id']}/edits", headers=h).json()] == [plain["id"]]


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"region": "eyes"}, 400, "another face"),           # The face itself.
        ({"region": "ears"}, 400, "region"),
        ({"region": "eyes", "steps": 0}, 400, "steps"),
        ({"region": "eyes", "face_id": "f_nobody"}, 404, "f_nobody"),
    ],
    ids=["itself", "unknown-region", "no-steps", "unknown-face"],
)
def test_bad_compositions(client: TestClient, body: dict[str, Any], status: int, phrase: str) -> None:
    h = shopper(client)
    face = projected_face(client, h)
    r = client.post(f"/v1/faces/{face['id']}/compositions", headers=h, json={"face_id": face["id"], **body})
    assert r.status_code == status and phrase in r.json()["detail"], r.text
    assert client.get(f"/v1/faces/{face['id']}/edits", headers=h).json() == []


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"strengths": {"wings": 1}}, "unknown edit name(s) 'wings'; known: age, gender, smile, pose"),
        ({"instruction": "older, purple"}, "unknown word(s) in the instruction: 'purple'"),
        ({"strengths": {"age": 99}}, "within [-15, 15]"),
        ({"strengths": {"smile": 1}, "keep": ["smile"]}, "keep it fixed"),
        ({}, "nothing to edit"),
    ],
    ids=["unknown-name", "unknown-word", "out-of-range", "keep-itself", "empty"],
)
def test_bad_edits_are_400(client: TestClient, body: dict[str, Any], phrase: str) -> None:
    h = shopper(client)
    face = projected_face(client, h)
    r = client.post(f"/v1/faces/{face['id']}/edits", headers=h, json=body)
    assert r.status_code == 400, r.text
    assert phrase in r.json()["detail"]


def test_a_face_that_is_not_projected_is_409(client: TestClient) -> None:
    from tryon.db import repositories as repo

    session_body = client.post("/v1/sessions").json()
    h = {"Authorization": f"Bearer {session_body['token']}"}
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:  # An uploaded face whose projection has not finished.
        face_id = repo.create_face(session, owner_id=session_body["owner_id"]).id
    r = client.post(f"/v1/faces/{face_id}/edits", headers=h, json={"strengths": {"age": 5}})
    assert r.status_code == 409 and "not projected yet" in r.json()["detail"]
    assert client.get(f"/v1/faces/{face_id}/edits", headers=h).json() == []
    assert client.post("/v1/faces/nope/edits", headers=h, json={"strengths": {"age": 5}}).status_code == 404
