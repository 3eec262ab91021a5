"""Shared test helpers: where ../shared lives, and tiny seeded networks."""

from __future__ import annotations

from pathlib import Path

import pytest

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
