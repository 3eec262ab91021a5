"""`FaceLatent`: a face in the face generator's latent space (W+ and noise), stored as npz.

What `project_face` produces and `render_face` / the edits consume. The npz holds only arrays (it
loads with `allow_pickle=False`), so a latent from an untrusted store cannot run code:

    ws          float32 [num_ws, w_dim]      W+ (one w per synthesis layer input).
    noise_K     float32 [res_K, res_K]       per-layer noise, K = 0 .. len(noise) - 1, in the order of
                                             `SynthesisNetwork.noise_shapes()`; absent = the G's stored
                                             noise (`noise_mode="const"`).
    pti/NAME    float16                      pivotal tuning: per-parameter deltas of the synthesis
                                             network (see `tryon.face.project.apply_pti`); absent = none.
    meta        uint8 [n]                    UTF-8 JSON: format, version, generator sha256, how it was made.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tryon.errors import InputError

FORMAT_NAME = "tryon-face-latent"
FORMAT_VERSION = 1
LATENT_FILE = "latent.npz"
PHOTO_FILE = "photo.png"         # Beside it in a `tryon project` folder: the aligned photo at its own resolution.
MAX_LATENT_BYTES = 64 * 2**20     # Refuse larger files before reading them (a latent is ~10 KB, with PTI ~0.3 MB).


@dataclasses.dataclass
class FaceLatent:
    """A face as the face generator's input. Arrays are numpy on the CPU."""

    ws: np.ndarray                              # float32 [num_ws, w_dim] (W+).
    noise: list[np.ndarray] | None = None       # float32 [res, res] per noise input, None = the G's const noise.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # JSON: generator sha256, method, steps, ...
    pti: dict[str, np.ndarray] | None = None    # {synthesis parameter name: delta}, None = the plain G.

    def __post_init__(self) -> None:
        ws = np.asarray(self.ws)
        if ws.ndim != 2 or ws.shape[0] < 1 or ws.shape[1] < 1:
            raise InputError(f"a face latent's ws must be [num_ws, w_dim], got shape {list(ws.shape)}")
        if not np.isfinite(ws).all():
            raise InputError("a face latent's ws contain NaN or infinity")
        self.ws = ws.astype(np.float32, copy=False)
        if self.noise is not None:
            noise = [np.asarray(n, dtype=np.float32) for n in self.noise]
            for k, n in enumerate(noise):
                if n.ndim != 2 or n.shape[0] != n.shape[1] or not np.isfinite(n).all():
                    raise InputError(f"a face latent's noise {k} must be a finite square [res, res], got {n.shape}")
            self.noise = noise
        if self.pti is not None:
            self.pti = {name: np.asarray(d) for name, d in self.pti.items()}

    @property
    def num_ws(self) -> int:
        return int(self.ws.shape[0])

    @property
    def w_dim(self) -> int:
        return int(self.ws.shape[1])

    def replace(self, **changes: Any) -> FaceLatent:
        """A copy with some fields changed (e.g. `latent.replace(ws=edited_ws)` keeps noise and PTI)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------------
    # Storage.

    def to_bytes(self) -> bytes:
        """Compressed npz bytes (for blob storage or a file)."""
        arrays: dict[str, np.ndarray] = {"ws": self.ws}
        for k, n in enumerate(self.noise or []):
            arrays[f"noise_{k}"] = n
        for name, delta in (self.pti or {}).items():
            arrays[f"pti/{name}"] = delta
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **self.meta}
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "the latent") -> FaceLatent:
        """Parse npz bytes written by `to_bytes`. Raises InputError for anything else."""
        if len(data) > MAX_LATENT_BYTES:
            raise InputError(f"{name} is too large for a face latent ({len(data):,} bytes)")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                files = {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"{name} is not a face latent npz file ({exc})") from None
        if "ws" not in files or "meta" not in files:
            raise InputError(f"{name} is not a face latent (it has no 'ws' or 'meta'; write it with tryon project)")
        try:
            meta = json.loads(files.pop("meta").astype(np.uint8).tobytes().decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{name}: unreadable metadata ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise InputError(f"{name} is not a {FORMAT_NAME} file")
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise InputError(f"{name} has format version {meta['version']}; this tryon reads up to {FORMAT_VERSION}")
        ws = files.pop("ws")
        noise_keys = sorted((k for k in files if k.startswith("noise_")), key=lambda k: int(k.split("_", 1)[1]))
        if [int(k.split("_", 1)[1]) for k in noise_keys] != list(range(len(noise_keys))):
            raise InputError(f"{name}: noise arrays are not numbered 0 .. n-1")
        noise = [files.pop(k) for k in noise_keys] or None
        pti = {k[len("pti/") :]: files.pop(k) for k in [k for k in files if k.startswith("pti/")]} or None
        if files:
            raise InputError(f"{name}: unexpected arrays {sorted(files)}")
        meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
        for arr in [ws, *(noise or []), *(pti or {}).values()]:
            if arr.dtype.kind != "f":
                raise InputError(f"{name}: arrays must be floating point, got {arr.dtype}")
        return cls(ws=ws, noise=noise, meta=meta, pti=pti)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_bytes()` to `path` (a file, usually DIR/latent.npz); returns the path."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaceLatent:
        """Read a latent.npz (or a projection folder that holds one)."""
        path = Path(path)
        if path.is_dir():
            path = path / LATENT_FILE
        if not path.is_file():
            raise InputError(f"no such face latent: {path}")
        if path.stat().st_size > MAX_LATENT_BYTES:
            raise InputError(f"{path} is too large for a face latent")
        return cls.from_bytes(path.read_bytes(), name=str(path))
