"""The demo shop: a service started with `demo_shop` (as `tryon up` does) and an empty products table
imports the demo catalog in a background job while it answers requests; once, however often it
starts; without the catalog folder, nothing (the generated catalog as before)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from service_helpers import service_settings, shopper
from sqlalchemy import select

from tryon.api import create_app
from tryon.db.models import Job, JobKind

FIXTURES = Path(__file__).parent / "data" / "fashion"


def demo_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog"
    shutil.copytree(FIXTURES / "images", folder / "images")
    shutil.copy(FIXTURES / "styles.csv", folder / "styles.csv")
    return folder


def demo_jobs(client: TestClient) -> list[Job]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == JobKind.PRODUCTS_IMPORT_DEMO)))


def wait_for(client: TestClient, job_id: str) -> dict[str, Any]:
    """The job once it has finished (polled; the loop bound is only a safety net)."""
    from tryon.db import repositories as repo

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for _ in range(3000):
        with runtime.database.sessions() as session:
            job = repo.get_job(session, job_id=job_id)
            assert job is not None
            if job.status in ("succeeded", "failed"):
                return {"status": job.status, "result": job.result, "error": job.error}
        time.sleep(0.1)
    raise AssertionError(f"the demo import {job_id} did not finish")


def test_a_fresh_service_imports_the_demo_shop_once(tmp_path: Path) -> None:
    settings = service_settings(tmp_path, demo_shop=True, demo_catalog=demo_catalog(tmp_path), demo_catalog_size=4)
    with TestClient(create_app(settings)) as client:
        h = shopper(client)
        assert client.get("/v1/labels", headers=h).status_code in (200, 503)  # The service answers meanwhile.
        jobs = demo_jobs(client)
        assert len(jobs) == 1
        done = wait_for(client, jobs[0].id)
        assert done["status"] == "succeeded", done
        assert done["result"]["rows"] == 4 and done["result"]["kept"] == 4
        listed = client.get("/v1/products", headers=h).json()
        assert listed["total"] == 4
    with TestClient(create_app(settings)) as client:  # Started again: products exist, nothing queued.
        assert len(demo_jobs(client)) == 1
        assert client.get("/v1/products", headers=shopper(client)).json()["total"] == 4


def test_without_the_catalog_or_the_setting_there_is_no_demo_shop(tmp_path: Path) -> None:
    missing = service_settings(tmp_path, demo_shop=True, demo_catalog=tmp_path / "nothing-here")
    with TestClient(create_app(missing)) as client:
        assert demo_jobs(client) == []
        assert client.get("/v1/products", headers=shopper(client)).json()["total"] == 0
    off = service_settings(tmp_path, demo_catalog=demo_catalog(tmp_path))  # demo_shop defaults to off.
    with TestClient(create_app(off)) as client:
        assert demo_jobs(client) == []
