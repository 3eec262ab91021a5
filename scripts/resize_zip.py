"""Downsample every image of a dataset zip (NVlabs layout) to RES×RES with Lanczos, keeping
dataset.json, label_schema.json and the other members as they are.

    python scripts/resize_zip.py data/fashion128.zip data/fashion64.zip 64

Used to make the 64² training set of the shipped CPU fashion model from the 128² one (the same
images in the same order, so feature-network splits stay aligned).
"""

from __future__ import annotations

import io
import sys
import zipfile

from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def resize_zip(src: str, dst: str, res: int) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.lower().endswith(IMAGE_SUFFIXES):
                img = Image.open(io.BytesIO(data)).convert("RGB").resize((res, res), Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                img.save(buf, "PNG", compress_level=6)
                data = buf.getvalue()
            zout.writestr(info.filename, data)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python scripts/resize_zip.py IN.zip OUT.zip RES")
    resize_zip(sys.argv[1], sys.argv[2], int(sys.argv[3]))
