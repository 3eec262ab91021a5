"""The content-addressed blob store: paths, atomic idempotent writes, deletes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tryon.db.blobs import BlobStore


def test_put_get_delete_by_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"hello blobs"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.path(digest)
    assert path == tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert store.get(digest) == data and store.exists(digest)
    assert list(store.iter_digests()) == [digest]
    # Same bytes again: same name, nothing rewritten, no temporary files left behind.
    mtime = path.stat().st_mtime_ns
    assert store.put(data) == digest and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]
    assert store.delete(digest) is True
    assert not store.exists(digest) and not (tmp_path / "blobs" / digest[:2]).exists()
    assert store.delete(digest) is False
    with pytest.raises(FileNotFoundError):
        store.get(digest)


def test_a_torn_blob_is_rewritten_and_bad_names_are_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"x" * 1000
    digest = store.put(data)
    store.path(digest).write_bytes(data[:10])  # As if a crash had left half a file.
    store.put(data)
    assert store.get(digest) == data
    for bad in ("../../etc/passwd", "ABC", digest.upper(), digest[:-1]):
        with pytest.raises(ValueError, match="sha256"):
            store.path(bad)


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    store = BlobStore(tmp_path)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
