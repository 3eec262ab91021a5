"""`tryon generate` and `tryon labels` on tiny checkpoints made with save_checkpoint."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tryon.checkpoint import save_checkpoint
from tryon.cli import main
from tryon.commands.generate import condition_vector, parse_seeds
from tryon.errors import InputError
from tryon.nn import Generator

RES = 8
SCHEMA = {
    "columns": [
        {"name": "articleType", "values": ["Tshirts", "Shirts", "Jeans"], "offset": 0},
        {"name": "gender", "values": ["Men", "Women"], "offset": 3},
    ],
    "dim": 5,
}


def _tiny_g(c_dim: int, seed: int) -> tuple[Generator, dict[str, Any]]:
    kwargs: dict[str, Any] = dict(
        z_dim=4, c_dim=c_dim, w_dim=4, img_resolution=RES, img_channels=3,
        mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=16, channel_max=4),
    )
    torch.manual_seed(seed)
    G = Generator(**kwargs).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return G, kwargs


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Generator]:
    G, kwargs = _tiny_g(5, 0)
    path = tmp_path_factory.mktemp("cond") / "ckpt"
    save_checkpoint(path, {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}}, "label_schema": SCHEMA})
    return path, G


DISTRIBUTION = {
    "total": 4,
    "combinations": [
        {"labels": {"articleType": "Jeans", "gender": "Women"}, "count": 3},
        {"labels": {"articleType": "Tshirts", "gender": "Men"}, "count": 1},
    ],
}


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Generator]:
    """Conditional, with the label combinations of its training data in its training record."""
    G, kwargs = _tiny_g(5, 3)
    path = tmp_path_factory.mktemp("trained") / "ckpt"
    config = {"networks": {"G_ema": {"kwargs": kwargs}}, "label_schema": SCHEMA,
              "training": {"label_distribution": DISTRIBUTION}}
    save_checkpoint(path, {"G_ema": G}, config)
    return path, G


@pytest.fixture(scope="module")
def uncond_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    G, kwargs = _tiny_g(0, 1)
    path = tmp_path_factory.mktemp("uncond") / "ckpt"
    return save_checkpoint(path, {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}}})


@pytest.fixture(scope="module")
def raw_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conditional, but without label names (like an imported NVlabs snapshot)."""
    G, kwargs = _tiny_g(3, 2)
    path = tmp_path_factory.mktemp("raw") / "ckpt"
    return save_checkpoint(path, {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}}})


def _expected_image(G: Generator, seed: int, c: list[float], psi: float = 1.0) -> np.ndarray:
    """What NVlabs' generate.py does for one seed, as uint8 HWC."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    with torch.no_grad():
        img = G(z, torch.tensor([c]), truncation_psi=psi, noise_mode="const")
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("7, 2-3,2") == [7, 2, 3]
    for bad in ("", "a", "3-1", "1-", "-2", "1,,2", str(2**32)):
        with pytest.raises(InputError, match="bad --seeds"):
            parse_seeds(bad)


def test_condition_vector_rules() -> None:
    assert condition_vector(5, SCHEMA, ["articleType=Jeans", "gender=Women"]).tolist() == [0, 0, 1, 0, 1]
    assert condition_vector(5, None, ["3"], [0]).tolist() == [1, 0, 0, 1, 0]
    assert condition_vector(0, None).shape == (0,)
    with pytest.raises(InputError, match="unconditional"):
        condition_vector(0, None, ["1"])
    with pytest.raises(InputError, match="conditional"):
        condition_vector(5, SCHEMA)
    with pytest.raises(InputError, match="no label names"):
        condition_vector(3, None, ["gender=Men"])
    with pytest.raises(InputError, match="out of range"):
        condition_vector(3, None, [], [3])
    with pytest.raises(InputError, match="unknown value 'Kids'"):
        condition_vector(5, SCHEMA, ["gender=Kids"])


def test_generate_grid(cond_ckpt: tuple[Path, Generator], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, G = cond_ckpt
    out = tmp_path / "grid.png"
    rc = main(["generate", "--checkpoint", str(ckpt), "--label", "articleType=Shirts", "--label", "gender=Men",
               "--seeds", "0-4", "--truncation", "0.7", "--out", str(out)])
    assert rc == 0
    assert "wrote a grid of 5 images" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * RES, 3 * RES, 3)  # 5 images -> 3 columns, 2 rows.
    c = [0, 1, 0, 1, 0]
    for i, seed in enumerate(range(5)):
        row, col = divmod(i, 3)
        cell = grid[row * RES : (row + 1) * RES, col * RES : (col + 1) * RES]
        np.testing.assert_array_equal(cell, _expected_image(G, seed, c, psi=0.7))
    assert not grid[RES:, 2 * RES :].any()  # The empty sixth cell stays black.


def test_generate_per_seed_files_are_deterministic(cond_ckpt: tuple[Path, Generator], tmp_path: Path) -> None:
    ckpt, G = cond_ckpt
    out = tmp_path / "samples"
    assert main(["generate", "--checkpoint", str(ckpt), "--class-index", "2", "--label", "4",
                 "--seeds", "3,12", "--out", f"{out}/"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed0003.png", "seed0012.png"]
    # The same seed gives the same image alone, in another list, and by label name.
    alone = tmp_path / "alone"
    assert main(["generate", "--checkpoint", str(ckpt), "--label", "articleType=Jeans", "--label", "gender=Women",
                 "--seeds", "12", "--out", f"{alone}/"]) == 0
    a = np.asarray(Image.open(out / "seed0012.png"))
    np.testing.assert_array_equal(a, np.asarray(Image.open(alone / "seed0012.png")))
    np.testing.assert_array_equal(a, _expected_image(G, 12, [0, 0, 1, 0, 1]))
    assert not np.array_equal(a, np.asarray(Image.open(out / "seed0003.png")))


def test_generate_unconditional_and_raw_index(uncond_ckpt: Path, raw_ckpt: Path, tmp_path: Path) -> None:
    assert main(["generate", "--checkpoint", str(uncond_ckpt), "--seeds", "0-1", "--noise-mode", "random",
                 "--out", str(tmp_path / "u.png")]) == 0
    first = np.asarray(Image.open(tmp_path / "u.png"))
    assert main(["generate", "--checkpoint", str(uncond_ckpt), "--seeds", "0-1", "--noise-mode", "random",
                 "--out", str(tmp_path / "u2.png")]) == 0
    np.testing.assert_array_equal(first, np.asarray(Image.open(tmp_path / "u2.png")))  # Seeded noise.
    assert main(["generate", "--checkpoint", str(raw_ckpt), "--label", "2", "--seeds", "0",
                 "--out", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size == (RES, RES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "colour=Black"], "unknown label 'colour'; the labels are: articleType, gender"),
        (["--label", "gender=Kids"], "unknown value 'Kids' for label 'gender'"),
        ([], "this generator is conditional"),
        (["--seeds", "5-1"], "runs backwards"),
        (["--out", "grid.gif"], "must end in .png or .jpg"),
        (["--checkpoint", "/nonexistent/ckpt"], "no checkpoint at /nonexistent/ckpt"),
        (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "nope"], "--device"),
    ],
)
def test_generate_bad_input_is_one_line(
    cond_ckpt: tuple[Path, Generator], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:
    base = {"--checkpoint": str(cond_ckpt[0]), "--seeds": "0-1", "--out": str(tmp_path / "g.png")}
    argv = ["generate"]
    for key, value in base.items():
        if key not in args:
            argv += [key, value]
    rc = main(argv + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("tryon generate: error:")
    assert message in err[0]
    assert not (tmp_path / "g.png").exists()


def test_labels_lists_columns(
    cond_ckpt: tuple[Path, Generator], uncond_ckpt: Path, raw_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["labels", "--checkpoint", str(cond_ckpt[0])]) == 0
    out = capsys.readouterr().out
    assert "articleType (3 values):" in out and "Tshirts, Shirts, Jeans" in out and "gender (2 values)" in out
    assert main(["labels", "--checkpoint", str(uncond_ckpt)]) == 0
    assert "unconditional" in capsys.readouterr().out
    assert main(["labels", "--checkpoint", str(raw_ckpt)]) == 0
    out = capsys.readouterr().out
    assert "no label names" in out and "0..2" in out
    assert main(["labels", "--checkpoint", "/nonexistent"]) == 1
    assert capsys.readouterr().err.strip() == "tryon labels: error: no checkpoint at /nonexistent: folder not found"


def test_generate_without_labels_draws_them_from_the_training_data(
    trained_ckpt: tuple[Path, Generator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, G = trained_ckpt
    out = tmp_path / "drawn"
    assert main(["generate", "--checkpoint", str(ckpt), "--seeds", "0-39", "--out", f"{out}/"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("no --label given: each seed gets a label combination drawn from its training data "
                        "(2 combinations of 4 images, in proportion)")
    drawn = dict(line.split(": ", 1) for line in lines if line.startswith("seed "))
    assert sorted(drawn) == sorted(f"seed {s}" for s in range(40))
    said = list(drawn.values())
    assert set(said) == {"articleType=Jeans, gender=Women", "articleType=Tshirts, gender=Men"}
    assert 20 <= said.count("articleType=Jeans, gender=Women") <= 38, "about 3 of 4 seeds"
    # Each image is its seed's latent with the combination the command said.
    vectors = {"articleType=Jeans, gender=Women": [0, 0, 1, 0, 1], "articleType=Tshirts, gender=Men": [1, 0, 0, 1, 0]}
    for seed in (0, 1, 2, 39):
        image = np.asarray(Image.open(out / f"seed{seed:04d}.png"))
        np.testing.assert_array_equal(image, _expected_image(G, seed, vectors[drawn[f"seed {seed}"]]))
    # A seed draws the same combination alone as among others.
    assert main(["generate", "--checkpoint", str(ckpt), "--seeds", "39", "--out", str(tmp_path / "one.png")]) == 0
    assert f"seed 39: {drawn['seed 39']}" in capsys.readouterr().out


def test_generate_without_labels_needs_a_record_of_them(
    cond_ckpt: tuple[Path, Generator], raw_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for ckpt, phrase in ((cond_ckpt[0], "does not record its training labels"), (raw_ckpt, "names no labels")):
        assert main(["generate", "--checkpoint", str(ckpt), "--seeds", "0", "--out", str(tmp_path / "g.png")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and phrase in err[0], err


SHIPPED = Path(__file__).resolve().parents[1] / "tryon" / "assets" / "fashion"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped fashion model")
def test_labels_and_generate_default_to_the_shipped_fashion_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["labels"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SHIPPED}: 4 labels") and "articleGroup (8 values):" in out and "on_model" in out
    assert main(["generate", "--seeds", "0-1", "--out", str(tmp_path / "g.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("no --label given: each seed gets a label combination drawn from its training data (")
    assert (SHIPPED / "label_distribution.json").is_file()
    assert lines[1].startswith("seed 0: articleGroup=") and lines[2].startswith("seed 1: articleGroup=")
    assert Image.open(tmp_path / "g.png").size == (128, 64)


def test_labels_records_a_datasets_label_combinations_for_generate(
    cond_ckpt: tuple[Path, Generator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tryon labels --record-distribution DATA.zip` counts the zip's combinations by name (its own value
    order may differ from the model's) into label_distribution.json, which generate then draws from."""
    import json

    from training_zip import SCHEMA as ZIP_SCHEMA
    from training_zip import write_test_zip

    data = write_test_zip(tmp_path / "data.zip", num_images=12, resolution=8)
    G, kwargs = _tiny_g(5, 4)
    reordered = {"columns": [{"name": "articleType", "values": ["Jeans", "Dresses", "Tshirts"]},
                             {"name": "gender", "values": ["Women", "Men"]}]}
    ckpt = save_checkpoint(tmp_path / "ckpt", {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}},
                                                             "label_schema": reordered})
    assert main(["labels", "--checkpoint", str(ckpt), "--record-distribution", str(data)]) == 0
    assert "wrote the label combinations of" in capsys.readouterr().out
    record = json.loads((ckpt / "label_distribution.json").read_text())
    assert record["total"] == 12 and sum(e["count"] for e in record["combinations"]) == 12
    with zipfile.ZipFile(data) as z:
        zip_labels = [e[1] for e in json.loads(z.read("dataset.json"))["labels"]]
    names = [{col["name"]: col["values"][int(np.argmax(v[col["offset"]: col["offset"] + len(col["values"])]))]
              for col in ZIP_SCHEMA["columns"]} for v in zip_labels]
    expected = {json.dumps(n, sort_keys=True): names.count(n) for n in names}
    assert {json.dumps(e["labels"], sort_keys=True): e["count"] for e in record["combinations"]} == expected

    assert main(["generate", "--checkpoint", str(ckpt), "--seeds", "0-3", "--out", str(tmp_path / "g.png")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(f"from its training data ({len(expected)} combinations of 12 images, in proportion)")

    # A model that does not know the zip's labels (no "Dresses") refuses it in one line.
    assert main(["labels", "--checkpoint", str(cond_ckpt[0]), "--record-distribution", str(data)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown value 'Dresses'" in err[0], err
