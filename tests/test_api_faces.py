"""POST/GET/DELETE /v1/faces and GET /v1/images: upload limits and bad files get the right 4xx,
uploads are stored upright without metadata, owners alone can see or delete them, a delete removes
every derived image from disk, and Idempotency-Key makes a retried upload return the first face."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import FACE_PHOTO, SHARED_FACE_PHOTOS, huge_png_header, png_bytes, service_settings, shopper

from tryon.api import create_app
from tryon.face.align import align_face
from tryon.services.face import FaceService

MAX_UPLOAD = 200_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, max_upload_bytes=MAX_UPLOAD, max_upload_pixels=4_000_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        # Uploads queue face.project: keep it short here (tests/test_face_project_api.py checks it).
        c.app.state.runtime.services.face = FaceService(steps=0)  # type: ignore[attr-defined]
        yield c



def upload(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    name: str = "me.png",
    content_type: str = "image/png",
    **extra: Any,
) -> Any:
    return client.post("/v1/faces", headers={**headers, **extra}, files={"file": (name, data, content_type)})


def face_jpeg(orientation: int | None = None) -> bytes:
    """The test face as JPEG with camera metadata; orientation 6 stores it sideways, the way a phone
    stores a portrait, with the EXIF tag that turns it upright."""
    im = Image.open(FACE_PHOTO).convert("RGB")
    if orientation == 6:
        im = im.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 = "rotate 90 clockwise to display".
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make: metadata that must not survive.
    im.save(buf, format="JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "status", "phrase"),
    [
        (b"", 400, "empty"),
        (b"name,size\nshirt,M\n" * 20, 415, "text file"),
        (b"GIF89a" + b"\x00" * 100, 415, "GIF"),
        (png_bytes()[:60], 400, "truncated"),
        (huge_png_header(30_000, 30_000), 413, "pixels"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, 400, "image"),  # A JPEG signature and garbage.
    ],
    ids=["empty", "text", "gif", "truncated-png", "huge-dimensions", "garbage-jpeg"],
)
def test_bad_uploads_get_the_right_4xx(client: TestClient, data: bytes, status: int, phrase: str) -> None:
    r = upload(client, shopper(client), data)
    assert r.status_code == status, r.text
    assert phrase in r.json()["detail"]


def test_too_many_bytes_is_413_streamed_or_declared(client: TestClient) -> None:
    h = shopper(client)
    r = upload(client, h, b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_UPLOAD + 10))
    assert r.status_code == 413 and f"{MAX_UPLOAD:,}" in r.json()["detail"]
    r = client.post(
        "/v1/faces",
        headers={**h, "Content-Type": "multipart/form-data; boundary=x"},
        content=b"x" * (MAX_UPLOAD + 100_000),
    )
    assert r.status_code == 413  # Refused by the body limit before parsing.


def test_missing_file_and_auth(client: TestClient) -> None:
    assert client.post("/v1/faces", headers=shopper(client)).status_code == 400
    assert upload(client, {}, png_bytes()).status_code == 401


def test_a_photo_without_a_face_is_422(client: TestClient) -> None:
    r = upload(client, shopper(client), png_bytes(320, 240))
    assert r.status_code == 422 and "no face" in r.json()["detail"]


def test_a_large_photo_without_a_face_is_refused_on_a_preview(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blank 2400x1600 JPEG is refused (422) from a reduced decode; the photo is never decoded in full
    (a blank 7000x5700 one cost 3.4 s of server time before its 422)."""
    import tryon.vision.io

    buf = io.BytesIO()
    Image.new("RGB", (2400, 1600), (240, 240, 240)).save(buf, format="JPEG", quality=90)
    decodes: list[tuple[int, int]] = []
    real_load_image = tryon.vision.io.load_image

    def recording_load_image(*args: Any, **kwargs: Any) -> Any:
        image = real_load_image(*args, **kwargs)
        decodes.append(image.size)
        return image

    monkeypatch.setattr(tryon.vision.io, "load_image", recording_load_image)
    r = upload(client, shopper(client), buf.getvalue())
    assert r.status_code == 422 and "no face" in r.json()["detail"]
    assert decodes and max(max(size) for size in decodes) < 2400, decodes


def test_face_upload_ownership_and_delete(client: TestClient) -> None:
    alice, bob = shopper(client), shopper(client)
    r = upload(client, alice, face_jpeg(), name="selfie.jpg", content_type="image/jpeg")
    assert r.status_code == 201, r.text
    face = r.json()
    assert face["status"] == "projecting" and face["faces_found"] == 1 and face["note"] is None
    assert face["aligned"]["width"] == face["aligned"]["height"] == 256
    assert {img["kind"] for img in face["images"]} == {"face_photo", "face_aligned", "face_aligned_hr"}
    # The same crop at the photo's own resolution (what a try-on shows): as many px as the face spans.
    hr = next(img for img in face["images"] if img["kind"] == "face_aligned_hr")
    assert hr["width"] == hr["height"] and 64 <= hr["width"] <= 512 and hr["width"] != 256

    photo = client.get(face["photo"]["url"], headers=alice)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    stored = Image.open(io.BytesIO(photo.content))
    assert stored.size == Image.open(FACE_PHOTO).size and not stored.getexif()  # No camera metadata kept.
    webp = client.get(face["aligned"]["url"], headers={**alice, "Accept": "image/webp,image/*;q=0.8"})
    assert webp.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).size == (256, 256)
    assert client.get(face["aligned"]["url"] + "?format=png", headers=alice).headers["content-type"] == "image/png"

    # Bob sees and deletes nothing of Alice's.
    assert client.get(f"/v1/faces/{face['id']}", headers=bob).status_code == 404
    assert client.get(face["photo"]["url"], headers=bob).status_code == 404
    assert client.delete(f"/v1/faces/{face['id']}", headers=bob).status_code == 404
    assert client.get(f"/v1/faces/{face['id']}", headers=alice).json()["id"] == face["id"]

    job = client.get(f"/v1/jobs/{face['projection_job']['id']}?wait=20", headers=alice).json()
    assert job["status"] == "succeeded", job
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    blob_files = [p for p in runtime.blobs.root.rglob("*") if p.is_file()]
    assert len(blob_files) == 5  # Photo, aligned crops (256 px, photo resolution), latent, reconstruction.
    assert client.delete(f"/v1/faces/{face['id']}", headers=alice).status_code == 204
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []  # Photo and crops gone from disk.
    assert client.get(f"/v1/faces/{face['id']}", headers=alice).status_code == 404
    assert client.get(face["photo"]["url"], headers=alice).status_code == 404


def test_exif_orientation_is_applied(client: TestClient) -> None:
    h = shopper(client)
    data = face_jpeg(orientation=6)
    upright = Image.open(FACE_PHOTO).size
    assert Image.open(io.BytesIO(data)).size == upright[::-1]  # Stored sideways.
    r = upload(client, h, data, name="portrait.jpg", content_type="image/jpeg")
    assert r.status_code == 201, r.text
    assert (r.json()["photo"]["width"], r.json()["photo"]["height"]) == upright


def two_people_jpeg() -> bytes:
    path = SHARED_FACE_PHOTOS / "two_people.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data folder is not next to this checkout)")
    if path.stat().st_size <= MAX_UPLOAD:
        return path.read_bytes()
    im = Image.open(path)
    im.thumbnail((800, 800))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_several_faces_are_listed_with_their_boxes_and_one_is_chosen(client: TestClient) -> None:
    h = shopper(client)
    data = two_people_jpeg()
    width, height = Image.open(io.BytesIO(data)).size
    r = upload(client, h, data, name="two.jpg", content_type="image/jpeg")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith("2 faces were found in the photo: say which one is you")
    assert [f["index"] for f in body["faces"]] == [0, 1]
    assert (body["photo_width"], body["photo_height"]) == (width, height)
    boxes = [f["box"] for f in body["faces"]]
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert abs(boxes[0][0] - boxes[1][0]) > 100, "two people side by side"
    assert client.get("/v1/faces", headers=h).json() == [], "nothing is stored for a refused photo"

    r = client.post("/v1/faces", headers=h, files={"file": ("two.jpg", data, "image/jpeg")}, data={"face": "1"})
    assert r.status_code == 201, r.text
    face = r.json()
    assert face["faces_found"] == 2 and face["face_index"] == 1 and "face 1, as asked" in face["note"]
    stored = next(f for f in client.get("/v1/faces", headers=h).json() if f["id"] == face["id"])
    assert stored["face_index"] == 1
    first = client.post("/v1/faces", headers=h, files={"file": ("two.jpg", data, "image/jpeg")}, data={"face": "0"})
    assert first.status_code == 201 and first.json()["face_index"] == 0 and "the largest" in first.json()["note"]
    # Each stored crop is its own person's: the alignment of that face of the photo, not of the other.
    photo = _image(client, h, face["photo"]["url"])
    people = [f.image for f in align_face(photo, 256, which="all")]
    aligned = [_image(client, h, f["aligned"]["url"]) for f in (first.json(), face)]
    for i in (0, 1):
        assert _difference(aligned[i], people[i]) < 0.25 * _difference(aligned[i], people[1 - i])


def _image(client: TestClient, headers: dict[str, str], url: str) -> Image.Image:
    return Image.open(io.BytesIO(client.get(url, headers=headers).content)).convert("RGB")


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two images of one size, 0-255."""
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@pytest.mark.parametrize(("face", "status", "phrase"), [("2", 422, "face 2 was asked for"), ("-1", 400, "face")])
def test_a_face_index_that_is_not_there_is_refused(client: TestClient, face: str, status: int, phrase: str) -> None:
    h = shopper(client)
    r = client.post(
        "/v1/faces", headers=h, files={"file": ("two.jpg", two_people_jpeg(), "image/jpeg")}, data={"face": face}
    )
    assert r.status_code == status, r.text
    assert phrase in r.json()["detail"]


def test_idempotent_upload_when_projection_is_installed(client: TestClient) -> None:
    h = shopper(client)
    first = upload(client, h, face_jpeg(), name="a.jpg", content_type="image/jpeg", **{"Idempotency-Key": "u1"})
    assert first.status_code == 201 and first.json()["status"] == "projecting"
    job = first.json()["projection_job"]
    assert job["kind"] == "face.project"
    again = upload(client, h, face_jpeg(), name="a.jpg", content_type="image/jpeg", **{"Idempotency-Key": "u1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = upload(
        client, h, face_jpeg(orientation=3), name="b.jpg", content_type="image/jpeg", **{"Idempotency-Key": "u1"}
    )
    assert other.status_code == 409 and "different request" in other.json()["detail"]
    # Once the face is deleted, the same request again says so instead of bringing it back.
    assert client.delete(f"/v1/faces/{first.json()['id']}", headers=h).status_code == 204
    gone = upload(client, h, face_jpeg(), name="a.jpg", content_type="image/jpeg", **{"Idempotency-Key": "u1"})
    assert gone.status_code == 409 and "a face that was deleted" in gone.json()["detail"], gone.text
