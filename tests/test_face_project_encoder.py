"""`tryon face-encoder`: the trainer runs end to end on a tiny zip (two steps), writes a checkpoint
with a model card that `load_face_models` accepts for the generator it was trained for, and
projection starts from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from training_zip import write_test_zip

from tryon.cli import main
from tryon.face import load_face_models, project_face

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_face_encoder_trains_saves_and_loads(tmp_path: Path) -> None:
    data = write_test_zip(tmp_path / "faces.zip", num_images=12, resolution=64, labels=False)
    out = tmp_path / "enc"
    args = ["face-encoder", "--out", str(out), "--data", str(data), "--max-steps", "2", "--pool", "8",
            "--batch", "4", "--real-batch", "2", "--image-every", "1", "--eval-real", "2", "--eval-pairs", "4"]
    assert main(args) == 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "held-out real faces" in card and "tryon face-encoder" in card
    models = load_face_models(encoder=out, classifier=False)
    assert models.encoder is not None and models.encoder_note is None
    img = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    res = project_face(models, img, steps=0)
    assert res.metrics["init"] == "encoder" and res.latent.meta["method"] == "encoder"
    assert main(args) == 1  # The folder exists now: refused without --overwrite.
