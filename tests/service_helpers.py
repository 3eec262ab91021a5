"""Helpers for the service tests (tests/test_api*.py, test_db*.py, test_jobs*.py): settings in a
tmp folder, a tiny random fashion checkpoint, throwaway PostgreSQL databases and Redis queues."""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tryon.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
FACE_PHOTO = REPO_ROOT / "tests" / "data" / "faces" / "photos" / "obama_small.jpg"
SHARED_FACE_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "face_photos"

# A small label schema like the shipped fashion model's (dim 10).
FASHION_SCHEMA: dict[str, Any] = {
    "columns": [
        {"name": "articleType", "values": ["Tshirts", "Shirts", "Jeans"]},
        {"name": "baseColour", "values": ["Black", "White", "Blue"]},
        {"name": "gender", "values": ["Men", "Women"]},
        {"name": "view", "values": ["flat", "on_model"]},
    ]
}


# A 16 px conditional generator on FASHION_SCHEMA: fast enough for any test.
TINY_G_KWARGS: dict[str, Any] = {
    "z_dim": 8,
    "c_dim": 10,
    "w_dim": 8,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
    "synthesis_kwargs": {"channel_base": 128, "channel_max": 8},
}


def service_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test service in `tmp_path` (no .env, no environment leaking in)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": None,  # Explicit values win over TRYON_* variables of the caller's shell.
        "redis_url": None,
        "fashion_checkpoint": None,
        "device": "cpu",
        "job_lease_seconds": 2.0,
        "job_workers": 2,
        "rate_limit_per_minute": 0,  # Limits and caps: the tests that check them set them.
        "rate_limit_per_address_per_minute": 0,
        "sessions_per_address_per_minute": 0,
        "auth_failures_per_address_per_minute": 0,
        "max_active_jobs_per_caller": 0,
        "batch_max_wait_ms": 5.0,
        # The tiny models' random classifier reads few labels: a checked catalog would leave most items
        # out. The tests of the check (test_fashion_catalog.py) turn it on.
        "catalog_candidates": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def save_tiny_fashion_checkpoint(directory: Path, *, seed: int = 0) -> Path:
    """A random conditional Generator (16 px) with FASHION_SCHEMA, saved like a real checkpoint."""
    import torch

    from tryon.checkpoint import save_checkpoint
    from tryon.nn import Generator

    kwargs = TINY_G_KWARGS
    torch.manual_seed(seed)
    G = Generator(**kwargs).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # So that truncation visibly changes the image.
    return save_checkpoint(
        directory, {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}}, "label_schema": FASHION_SCHEMA}
    )


def shopper(client: Any) -> dict[str, str]:
    """Headers of a new anonymous shopper session of a TestClient."""
    r = client.post("/v1/sessions")
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def api_key(client: Any, *scopes: str) -> dict[str, str]:
    """Headers of a new API key with `scopes` (default admin) on a TestClient's service."""
    from tryon.db import repositories as repo

    runtime = client.app.state.runtime
    with runtime.database.sessions.begin() as session:
        _, key = repo.create_api_key(session, name="test", scopes=list(scopes or ("admin",)))
    return {"X-API-Key": key}


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's signature), with a
    valid CRC and a token of data: it must be refused before anything is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server (TRYON_TEST_POSTGRES_URL), dropped after.
    Skips the test when the variable is unset (see scripts/ci_services.sh)."""
    base = os.environ.get("TRYON_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("TRYON_TEST_POSTGRES_URL is not set (start one with: source scripts/ci_services.sh)")
    from sqlalchemy import text

    from tryon.db.engine import create_db_engine, normalize_url

    url = normalize_url(base)
    name = f"tryon_t_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(url.set(database="postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_url_or_skip() -> str:
    url = os.environ.get("TRYON_TEST_REDIS_URL")
    if not url:
        pytest.skip("TRYON_TEST_REDIS_URL is not set (start one with: source scripts/ci_services.sh)")
    return url
