"""The `face.project` job and its follow-up `face.refine` through the real API and the real queue: an
upload of a real photo is projected by the shipped face models (a few steps), then refined (pivotal
tuning, a few steps) while the face is already usable; GET shows the reconstruction and where the
refinement stands; later edits use the tuned generator; DELETE removes the latents and the
reconstruction from the blob store, also while the refinement runs; a failing refinement leaves the
fast projection in use."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import FACE_PHOTO, SHARED_FACE_PHOTOS, postgres_database, service_settings, shopper

from tryon.api import create_app
from tryon.db.models import Face, JobKind
from tryon.face import FaceLatent
from tryon.services.face import FaceService

PHOTO = SHARED_FACE_PHOTOS / "obama-480p.jpg"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgresql" else None
        c = stack.enter_context(TestClient(create_app(service_settings(tmp_path, database_url=url)),
                                           raise_server_exceptions=False))
        # Few steps: the test checks the plumbing, benchmarks/bench_face.py the quality.
        c.app.state.runtime.services.face = FaceService(steps=3, refine_steps=2)  # type: ignore[attr-defined]
        yield c


def require_photo() -> None:
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} is absent (the shared data folder is not next to this checkout)")


def upload_projected(client: TestClient, h: dict[str, str]) -> dict[str, Any]:
    """Upload PHOTO and wait for its projection to succeed; the face as GET shows it then."""
    r = client.post("/v1/faces", headers=h, files={"file": ("me.jpg", PHOTO.read_bytes(), "image/jpeg")})
    assert r.status_code == 201, r.text
    job = wait_for_job(client, h, r.json()["projection_job"]["id"])
    assert job["status"] == "succeeded", job
    face: dict[str, Any] = client.get(f"/v1/faces/{r.json()['id']}", headers=h).json()
    return face


def stored_latent(client: TestClient, face_id: str) -> FaceLatent:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        row = session.get(Face, face_id)
        assert row is not None and row.latent_sha256 is not None
        sha = row.latent_sha256
    return FaceLatent.from_bytes(runtime.blobs.get(sha))


def wait_for_job(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    for _ in range(120):
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}?wait=5", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_upload_is_projected_and_delete_removes_everything(client: TestClient) -> None:
    require_photo()
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert JobKind.FACE_PROJECT in runtime.registry
    h = shopper(client)
    r = client.post("/v1/faces", headers=h, files={"file": ("me.jpg", PHOTO.read_bytes(), "image/jpeg")})
    assert r.status_code == 201, r.text
    face = r.json()
    assert face["status"] == "projecting" and face["projection_job"]["kind"] == JobKind.FACE_PROJECT
    assert face["reconstruction"] is None or face["status"] == "projected"

    job = wait_for_job(client, h, face["projection_job"]["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["face_id"] == face["id"] and set(result["metrics"]) >= {"psnr", "ssim", "feature_distance"}

    face = client.get(f"/v1/faces/{face['id']}", headers=h).json()
    assert face["status"] == "projected"
    recon = face["reconstruction"]
    assert recon is not None and recon["id"] == result["reconstruction"]["id"]
    assert recon["kind"] == "face_reconstruction"
    png = client.get(recon["url"], headers=h)
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (64, 64)
    assert client.get(recon["url"], headers=shopper(client)).status_code == 404  # Not someone else's.

    with runtime.database.sessions() as session:
        row = session.get(Face, face["id"])
        assert row is not None and row.latent_sha256 == result["latent_sha256"]
    latent = FaceLatent.from_bytes(runtime.blobs.get(result["latent_sha256"]))
    assert latent.ws.shape == (10, 128) and latent.meta["steps"] == 3

    # The projection queued its refinement; once it is done the face's latent carries the tuned deltas.
    assert face["refinement"] in ("pending", "done") and face["refinement_job"]["kind"] == JobKind.FACE_REFINE
    assert result["refinement_job"]["id"] == face["refinement_job"]["id"]
    refined = wait_for_job(client, h, face["refinement_job"]["id"])
    assert refined["status"] == "succeeded", refined
    face = client.get(f"/v1/faces/{face['id']}", headers=h).json()
    assert face["refinement"] == "done" and face["status"] == "projected"
    assert face["reconstruction"]["id"] == refined["result"]["reconstruction"]["id"] != recon["id"]
    tuned = stored_latent(client, face["id"])
    assert tuned.pti and tuned.meta["pti_steps"] == 2 and np.array_equal(tuned.ws, latent.ws)
    assert not runtime.blobs.exists(result["latent_sha256"])  # The untuned latent was replaced, not kept.
    recon = face["reconstruction"]

    hr = next(img for img in face["images"] if img["kind"] == "face_aligned_hr")
    with runtime.database.sessions() as session:
        from tryon.db.models import Image as ImageRow

        hr_sha = session.get(ImageRow, hr["id"]).blob_sha256  # type: ignore[union-attr]
    assert runtime.blobs.exists(hr_sha)
    assert client.delete(f"/v1/faces/{face['id']}", headers=h).status_code == 204
    assert not runtime.blobs.exists(refined["result"]["latent_sha256"]) and not runtime.blobs.exists(hr_sha)
    assert client.get(f"/v1/images/{hr['id']}", headers=h).status_code == 404
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []  # Photo, crops, latent, reconstruction.
    assert client.get(recon["url"], headers=h).status_code == 404


class _BrokenFaceService(FaceService):
    """Fails the way a transient fault does (not a TryonError): the runner retries, then gives up."""

    def __init__(self) -> None:
        super().__init__(steps=1)
        self.calls = 0

    def project(self, aligned: Any, progress: Any = None) -> Any:
        self.calls += 1
        raise RuntimeError("the accelerator went away")


def test_a_face_whose_projection_runs_out_of_tries_reads_failed(client: TestClient) -> None:
    broken = _BrokenFaceService()
    client.app.state.runtime.services.face = broken  # type: ignore[attr-defined]
    h = shopper(client)
    r = client.post("/v1/faces", headers=h, files={"file": ("me.jpg", FACE_PHOTO.read_bytes(), "image/jpeg")})
    assert r.status_code == 201, r.text
    face = r.json()
    job = wait_for_job(client, h, face["projection_job"]["id"])
    assert job["status"] == "failed" and "accelerator went away" in job["error"], job
    assert broken.calls == 2 and job["attempts"] == 2  # face.project has two tries.

    face = client.get(f"/v1/faces/{face['id']}", headers=h).json()
    assert face["status"] == "failed", face  # Not "projecting" forever.
    assert face["reconstruction"] is None and face["projection_job"]["error"] == job["error"]
    # A try-on of it is refused with the reason, not queued.
    r = client.post("/v1/tryon", headers=h, json={"face_id": face["id"], "outfit_id": "o_none"})
    assert r.status_code == 409 and "upload the photo again" in r.json()["detail"], r.text


def test_the_face_service_is_created_once_per_process(tmp_path: Path) -> None:
    from tryon.services import Services

    services = Services.from_settings(service_settings(tmp_path))
    first = services.face
    assert first.steps > 0
    models = first.models()
    assert first.models() is models and models.resolution == 64
    # The try-on pipeline renders with the same face models (one face G per process), made once.
    pipe = services.tryon.pipeline(models)
    assert services.tryon.pipeline(first.models()) is pipe and pipe.face_models is models
    services.close()


class _GatedRefinement(FaceService):
    """The real refinement, held at its start until the test lets it go (to act while it runs)."""

    def __init__(self) -> None:
        super().__init__(steps=3, refine_steps=2)
        self.started = threading.Event()
        self.go = threading.Event()

    def refine(self, aligned: Any, latent: Any, progress: Any = None) -> Any:
        self.started.set()
        assert self.go.wait(120), "the test never released the refinement"
        return super().refine(aligned, latent, progress)


def test_the_face_is_usable_while_it_is_refined_and_edits_after_use_the_tuned_generator(client: TestClient) -> None:
    require_photo()
    gated = _GatedRefinement()
    client.app.state.runtime.services.face = gated  # type: ignore[attr-defined]
    h = shopper(client)
    face = upload_projected(client, h)
    assert gated.started.wait(120)
    face = client.get(f"/v1/faces/{face['id']}", headers=h).json()
    assert face["status"] == "projected" and face["refinement"] == "pending", face
    before = client.post(f"/v1/faces/{face['id']}/edits", headers=h, json={"strengths": {"smile": 1}})
    assert before.status_code == 201, before.text  # Not waiting for the refinement.

    gated.go.set()
    assert wait_for_job(client, h, face["refinement_job"]["id"])["status"] == "succeeded"
    assert client.get(f"/v1/faces/{face['id']}", headers=h).json()["refinement"] == "done"
    after = client.post(f"/v1/faces/{face['id']}/edits", headers=h, json={"strengths": {"smile": 1}})
    assert after.status_code == 201, after.text
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    from tryon.db.models import Edit

    with runtime.database.sessions() as session:
        latents = [FaceLatent.from_bytes(runtime.blobs.get(session.get(Edit, r.json()["id"]).latent_sha256))  # type: ignore[union-attr, arg-type]
                   for r in (before, after)]
    assert latents[0].pti is None and latents[1].pti  # The later edit renders with the face's tuned G.
    assert np.array_equal(latents[0].ws, latents[1].ws)


def test_deleting_a_face_while_it_is_refined_leaves_nothing_behind(client: TestClient) -> None:
    require_photo()
    gated = _GatedRefinement()
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.services.face = gated
    h = shopper(client)
    face = upload_projected(client, h)
    assert gated.started.wait(120)
    assert client.delete(f"/v1/faces/{face['id']}", headers=h).status_code == 204
    gated.go.set()
    job = wait_for_job(client, h, face["refinement_job"]["id"])
    assert job["status"] == "failed" and "was deleted while it was being refined" in job["error"], job
    assert job["attempts"] == 1  # The input is gone: not retried.
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []  # Not even the tuned latent.


class _BrokenRefinement(FaceService):
    """Projects for real; the refinement fails like a transient fault, on every try."""

    def __init__(self) -> None:
        super().__init__(steps=3, refine_steps=2)
        self.calls = 0

    def refine(self, aligned: Any, latent: Any, progress: Any = None) -> Any:
        self.calls += 1
        raise RuntimeError("the accelerator went away")


def test_a_failed_refinement_leaves_the_fast_projection_in_use(client: TestClient) -> None:
    require_photo()
    broken = _BrokenRefinement()
    client.app.state.runtime.services.face = broken  # type: ignore[attr-defined]
    h = shopper(client)
    face = upload_projected(client, h)
    projected = stored_latent(client, face["id"])
    job = wait_for_job(client, h, face["refinement_job"]["id"])
    assert job["status"] == "failed" and "accelerator went away" in job["error"] and broken.calls == 2, job
    face = client.get(f"/v1/faces/{face['id']}", headers=h).json()
    assert face["status"] == "projected" and face["refinement"] == "failed", face
    assert face["refinement_job"]["error"] == job["error"]
    latent = stored_latent(client, face["id"])
    assert latent.pti is None and np.array_equal(latent.ws, projected.ws)
    r = client.post(f"/v1/faces/{face['id']}/edits", headers=h, json={"strengths": {"smile": 1}})
    assert r.status_code == 201, r.text


def test_no_refinement_is_queued_when_it_is_off(client: TestClient) -> None:
    require_photo()
    client.app.state.runtime.services.face = FaceService(steps=3, refine_steps=0)  # type: ignore[attr-defined]
    h = shopper(client)
    face = upload_projected(client, h)
    assert face["refinement"] is None and face["refinement_job"] is None
    assert stored_latent(client, face["id"]).pti is None
