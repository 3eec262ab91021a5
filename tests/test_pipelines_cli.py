"""`tryon outfit`, `tryon variants`, `tryon transfer` in-process on a tiny checkpoint: files written,
bad input one readable line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from pipeline_helpers import save_tiny_fashion_models

from tryon.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_fashion_models(tmp_path_factory.mktemp("models")))


def test_outfit_grid_and_folder(ckpt: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    args = ["outfit", "--checkpoint", ckpt, "--category", "jeans", "--colour", "blue", "--gender", "Men"]
    assert main([*args, "--view", "on_model", "--seeds", "0-3", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (32, 32)  # 4 images of 16 px, 2 x 2.
    assert main([*args, "--seeds", "5,7", "--out", f"{tmp_path}/each/"]) == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["results.json", "seed0005.png", "seed0007.png"]


def test_variants_writes_params(ckpt: str, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    argv = ["variants", "--checkpoint", ckpt, "--mode", "mix", "--category", "Shirts", "--seed", "3",
            "--other-category", "Jeans", "--other-seed", "9", "--layers", "coarse,fine", "--out", f"{out}/"]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["params"]["layers"] for r in records] == ["coarse", "fine"]
    assert records[0]["params"]["other"]["labels"]["articleType"] == "Jeans"
    path = tmp_path / "path.png"
    argv = ["variants", "--checkpoint", ckpt, "--mode", "interpolate", "--category", "Shirts", "--steps", "3",
            "--out", str(path)]
    assert main(argv) == 0 and Image.open(path).size == (32, 32)


def test_transfer_writes_its_images_and_metrics(ckpt: str, tmp_path: Path) -> None:
    photo = Image.new("RGB", (90, 120), (250, 250, 250))
    photo.paste((30, 160, 40), (10, 20, 70, 110))
    photo.save(tmp_path / "shirt.png")
    out = tmp_path / "worn"
    assert main(["transfer", str(tmp_path / "shirt.png"), "--checkpoint", ckpt, "--steps", "3", "--out", str(out)]) == 0
    assert {"framed.png", "flat.png", "on_model.png", "before.png", "result.json", "latents.npz"} <= {
        p.name for p in out.iterdir()
    }
    result = json.loads((out / "result.json").read_text())
    assert "colour_distance" in result["metrics"] and result["labels"]["view"] == "flat"


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["outfit", "--category", "Hats", "--out", "x.png"], "its values are: Tshirts, Shirts, Jeans"),
        (["outfit", "--category", "Jeans", "--seeds", "9-1", "--out", "x.png"], "runs backwards"),
        (["variants", "--mode", "mix", "--category", "Jeans", "--layers", "soft", "--out", "x.png"], "coarse, middle"),
        (["variants", "--mode", "truncation", "--category", "Jeans", "--truncations", "a,b", "--out", "x.png"],
         "--truncations"),
    ],
)
def test_bad_input_is_one_line(ckpt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                               phrase: str) -> None:
    argv = [a if a != "x.png" else str(tmp_path / "x.png") for a in argv]
    assert main([*argv, "--checkpoint", ckpt]) == 1
    err = capsys.readouterr().err
    assert phrase in err and len(err.strip().splitlines()) == 1, err


def test_transfer_of_a_blank_photo_fails_clearly(ckpt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (50, 50), (255, 255, 255)).save(tmp_path / "blank.png")
    assert main(["transfer", str(tmp_path / "blank.png"), "--checkpoint", ckpt, "--out", str(tmp_path / "o")]) == 1
    assert "no garment found" in capsys.readouterr().err
