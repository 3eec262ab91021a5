"""`tryon faces reproject` after the face generator changed: faces projected with generator A are
queued again once the service points at generator B, and the service's workers re-project them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from service_helpers import FACE_PHOTO, service_settings, shopper
from test_face_edits import save_tiny_face_checkpoint

from tryon.api import create_app
from tryon.db.models import Face
from tryon.face.latent import FaceLatent
from tryon.face.models import load_face_models


def reproject(data_dir: Path, checkpoint: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")}
    env.update(TRYON_DATA_DIR=str(data_dir), TRYON_FACE_CHECKPOINT=str(checkpoint), TRYON_DEVICE="cpu")
    result = subprocess.run([sys.executable, "-m", "tryon.cli", "faces", "reproject", *args], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def latent_generator(client: TestClient, face_id: str) -> Any:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        row = session.get(Face, face_id)
        assert row is not None and row.latent_sha256 is not None
        return FaceLatent.from_bytes(runtime.blobs.get(row.latent_sha256)).meta["generator_sha256"]


def test_faces_of_another_generator_are_projected_again(tmp_path: Path) -> None:
    a = save_tiny_face_checkpoint(tmp_path / "a", seed=1)
    b = save_tiny_face_checkpoint(tmp_path / "b", seed=2)
    sha_a, sha_b = (load_face_models(p, encoder=False, classifier=False).generator_sha256 for p in (a, b))
    assert sha_a != sha_b

    with TestClient(create_app(service_settings(tmp_path, face_checkpoint=a, face_project_steps=2))) as client:
        h = shopper(client)
        r = client.post("/v1/faces", headers=h, files={"file": ("me.jpg", FACE_PHOTO.read_bytes(), "image/jpeg")})
        face = r.json()
        assert client.get(f"/v1/jobs/{face['projection_job']['id']}?wait=30", headers=h).json()["status"] == "succeeded"
        assert latent_generator(client, face["id"]) == sha_a

    data_dir = tmp_path / "data"
    assert reproject(data_dir, a).startswith("0 face(s)")
    assert reproject(data_dir, b, "--dry-run").startswith("1 face(s)")
    out = reproject(data_dir, b)
    assert "queued 1 face.project job(s)" in out, out

    with TestClient(create_app(service_settings(tmp_path, face_checkpoint=b, face_project_steps=2))) as client:
        again = client.get(f"/v1/faces/{face['id']}", headers=h).json()
        assert again["projection_job"]["id"] != face["projection_job"]["id"]
        job = client.get(f"/v1/jobs/{again['projection_job']['id']}?wait=30", headers=h).json()
        assert job["status"] == "succeeded", job
        assert client.get(f"/v1/faces/{face['id']}", headers=h).json()["status"] == "projected"
        assert latent_generator(client, face["id"]) == sha_b
    assert reproject(data_dir, b).startswith("0 face(s)")
