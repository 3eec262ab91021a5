"""Tiny dataset zips in NVlabs' layout (images + dataset.json + label_schema.json) for training tests."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SCHEMA = {
    "columns": [
        {"name": "articleType", "values": ["Tshirts", "Jeans", "Dresses"], "offset": 0},
        {"name": "gender", "values": ["Men", "Women"], "offset": 3},
    ],
    "dim": 5,
}


def write_test_zip(
    path: Path, num_images: int = 16, resolution: int = 64, labels: bool = True, seed: int = 0, fmt: str = "png"
) -> Path:
    """Smooth random RGB images (a few colour blobs), one-hot labels of SCHEMA when `labels`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    entries = []
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(num_images):
            img = np.zeros([resolution, resolution, 3])
            for _ in range(3):
                cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
                blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
                img += blob[:, :, None] * rng.uniform(0, 1, size=3)
            u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(u8).save(buf, format="PNG" if fmt == "png" else "JPEG", quality=95)
            name = f"00000/img{i:08d}.{fmt}"
            zf.writestr(name, buf.getvalue())
            c = np.zeros(5, dtype=np.float32)
            c[i % 3] = 1
            c[3 + (i // 3) % 2] = 1
            entries.append([name, c.tolist()])
        zf.writestr("dataset.json", json.dumps({"labels": entries if labels else None}))
        if labels:
            zf.writestr("label_schema.json", json.dumps(SCHEMA))
    return path
