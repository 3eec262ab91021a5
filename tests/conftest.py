"""Shared test helpers: where ../shared lives, the fixture of the shared NVlabs reference numbers, one
torch thread for the modules that ask for it (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`),
the API on a tiny fashion model (`client`, built on the module's `checkpoint`), and a tiny training
set (`data_zip`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
FIXTURES_DIR = SHARED_DIR / "fixtures"
DATA_DIR = SHARED_DIR / "data"


def require_shared(path: Path) -> Path:
    """Skip the calling test (with the reason) when a file or folder from ../shared is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data/fixtures folder is not next to this checkout)")
    return path


@pytest.fixture
def shared_fixture_npz() -> Path:
    return require_shared(FIXTURES_DIR / "sg2_cond64_small.npz")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's tests with one torch thread, then restore. Tiny tensors and batch-1 projection
    gain nothing from a second thread; on a shared 2-core machine two OpenMP threads that lose their
    cores spin and wait (projection steps ran 10-20x slower than with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fashion generator with its feature network (`pipeline_helpers.save_tiny_fashion_models`),
    made once per module. A module that needs another model defines its own `checkpoint`."""
    from pipeline_helpers import save_tiny_fashion_models

    return save_tiny_fashion_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def client(tmp_path: Path, checkpoint: Path) -> Iterator[TestClient]:
    """The API (lifespan started) with a fresh data directory and `checkpoint` as its fashion model."""
    from fastapi.testclient import TestClient
    from service_helpers import service_settings

    from tryon.api import create_app

    with TestClient(create_app(service_settings(tmp_path, fashion_checkpoint=checkpoint))) as c:
        yield c


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled dataset zip of 12 64x64 images (`training_zip.write_test_zip`), made once per module."""
    from training_zip import write_test_zip

    return write_test_zip(tmp_path_factory.mktemp("data") / "tiny64.zip", num_images=12, resolution=64)
