"""`tryon tryon`: bad input as one line on stderr (exit 1), and a real run: a projection folder (a
latent of the shipped face G) onto a generated-looking outfit image and onto labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tryon.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["tryon", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def projection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `tryon project`-like folder: latent.npz of the shipped face generator."""
    from tryon.face import load_face_models
    from tryon.face.latent import FaceLatent

    models = load_face_models(None)
    ws = models.w_avg.numpy()[None].repeat(models.num_ws, 0)
    folder = tmp_path_factory.mktemp("projection")
    FaceLatent(ws=ws, meta={"generator_sha256": models.generator_sha256}).save(folder / "latent.npz")
    return folder


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    photo = tmp_path / "face.png"
    Image.new("RGB", (32, 32)).save(photo)
    cases = [
        ((), "give the model one way"),
        (("--outfit", "o.png", "--model-image", "m.jpg"), "give the model one way"),
        (("--category", "tops", "--edit", "age"), "use NAME=VALUE"),
        (("--category", "tops", "--edit", "age=old"), "must be a number"),
    ]
    for extra, message in cases:
        rc, _, err = run(capsys, "--face", str(photo), "--out", str(tmp_path / "r.png"), *extra)
        assert rc == 1 and message in err and err.count("\n") == 1, err
    missing = str(tmp_path / "nope.jpg")
    rc, _, err = run(capsys, "--face", missing, "--category", "tops", "--out", str(tmp_path / "r.png"))
    assert rc == 1 and "does not exist" in err
    rc, _, err = run(capsys, "--face", str(photo), "--category", "tops", "--out", str(tmp_path / "r.gif"))
    assert rc == 1 and "--out" in err


def test_a_projection_onto_an_outfit_image_and_onto_labels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, projection: Path
) -> None:
    yy, xx = np.mgrid[:64, :64] / 64
    blob = 245 - 150 * np.exp(-(((xx - 0.5) / 0.2) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    outfit = tmp_path / "outfit.png"
    Image.fromarray(np.repeat(blob[..., None], 3, 2).astype(np.uint8)).save(outfit)
    out = tmp_path / "result.png"
    face_png = str(tmp_path / "f.png")
    args = ("--face", str(projection), "--outfit", str(outfit), "--out", str(out), "--save-face", face_png)
    rc, stdout, err = run(capsys, *args)
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["located"] == "canonical" and summary["size"] == [512, 512]
    assert Image.open(out).size == (512, 512) and Image.open(tmp_path / "f.png").size == (64, 64)
    assert "head position" in err  # The fallback is said.

    rc, stdout, err = run(
        capsys, "--face", str(projection), "--category", "tops", "--gender", "Women", "--seed", "2", "--out", str(out)
    )
    assert rc == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["size"] == [512, 512]
    rc, _, err = run(capsys, "--face", str(projection), "--category", "hats-and-wings", "--out", str(out))
    assert rc == 1 and "hats-and-wings" in err and err.count("\n") == 1
