"""A content-addressed blob store: bytes named by their sha256 under `<data_dir>/blobs`.

    blobs/ab/cd/abcd…(64 hex)      one file per distinct content

Writes are atomic (a temporary file in the same folder, fsync, `os.replace`), so a reader sees the
whole blob or none, and writing the same bytes twice is harmless. The database (`blobs` table)
records which blobs exist and who refers to them; this class only moves bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LATENT_MEDIA_TYPE = "application/x-npz"  # A stored latent: numpy .npz of the ws and their parameters.


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs under `root` (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, sha256: str) -> Path:
        """Where the blob `sha256` lives (whether or not it exists)."""
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store `data`; returns its sha256. Storing bytes that are already there writes nothing."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, sha256: str) -> bytes:
        """The bytes of blob `sha256`; FileNotFoundError when it is not stored."""
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove blob `sha256` (and its folders when they become empty). True if it was there."""
        target = self.path(sha256)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        for folder in (target.parent, target.parent.parent):
            try:
                folder.rmdir()
            except OSError:
                break                   # Not empty (or already gone): stop climbing.
        return True

    def iter_digests(self) -> Iterator[str]:
        """Every stored blob's sha256 (for consistency checks and garbage collection)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("*/*/*"):
            if _SHA256_RE.match(path.name) and path.is_file():
                yield path.name


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
