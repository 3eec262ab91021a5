"""Whole runs: photos -> dataset zip (NVlabs-compatible) -> torch Dataset; the CLI verbs."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch

from datasets import ImageZipDataset
from datasets.faces import FaceOptions
from datasets.fashion import FashionOptions
from datasets.pipeline import Item, LabelPlan, Outcome, Output, build_dataset, encode_image
from datasets.prepare import prepare_faces, prepare_fashion, prepare_viton
from tryon.cli import main
from tryon.errors import InputError

DATA = Path(__file__).parent / "data"
FASHION = DATA / "fashion"
FACES = DATA / "faces"


@pytest.fixture(scope="module")
def fashion_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fashion") / "fashion.zip"
    prepare_fashion(
        FASHION / "images", out=out, options=FashionOptions(res=64), labels=FASHION / "styles.csv",
        min_count=2, workers=0, progress=False,
    )  # fmt: skip
    return out


def read(zf: zipfile.ZipFile, name: str) -> Any:
    return json.loads(zf.read(name))


def nvlabs_load(path: Path) -> tuple[list[str], np.ndarray | None, tuple[int, ...]]:
    """What NVlabs' ImageFolderDataset (stylegan2-ada-pytorch) does with a zip, condensed."""
    with zipfile.ZipFile(path) as zf:
        fnames = sorted(n for n in zf.namelist() if "." + n.rsplit(".", 1)[-1].lower() in PIL.Image.EXTENSION)
        labels = json.loads(zf.read("dataset.json"))["labels"]
        raw = None
        if labels is not None:
            table = dict(labels)
            raw = np.array([table[f.replace("\\", "/")] for f in fnames]).astype(np.float32)
        with zf.open(fnames[0]) as f:
            shape = np.array(PIL.Image.open(f)).shape
    return fnames, raw, shape


def test_fashion_zip_layout_labels_and_report(fashion_zip: Path) -> None:
    fnames, raw, shape = nvlabs_load(fashion_zip)
    assert fnames == [f"00000/img{i:08d}.png" for i in range(5)]
    assert shape == (64, 64, 3) and raw is not None and raw.shape[0] == 5
    with zipfile.ZipFile(fashion_zip) as zf:
        schema = read(zf, "label_schema.json")
        report = read(zf, "report.json")
        meta = read(zf, "metadata.json")["images"]
    names = [c["name"] for c in schema["columns"]]
    assert names == ["articleType", "baseColour", "gender", "view"]
    view = schema["columns"][-1]
    assert view["values"] == ["flat", "on_model"] and view["offset"] + 2 == schema["dim"] == raw.shape[1]
    assert schema["columns"][0]["values"] == ["Tshirts", "other"]  # 4 T-shirts; the jeans are rarer than min_count 2.
    assert np.all(raw.sum(axis=1) == len(names))  # One value per column.
    # 10025/10643 are flats, 10057/10075 on-model (pose), 11280 on-model legs only (box); 10647 has no label.
    frames = {m["source"]: (m["view"], m["frame"]) for m in meta.values()}
    assert frames == {
        "10025.jpg": ("flat", "box"), "10057.jpg": ("on_model", "pose"), "10075.jpg": ("on_model", "pose"),
        "10643.jpg": ("flat", "box"), "11280.jpg": ("on_model", "box"),
    }  # fmt: skip
    assert report["photos"] == 6 and report["photos_kept"] == 5 and report["images"] == 5
    assert report["skipped_by_reason"] == {"unlabelled": 1}
    assert report["skipped"] == [{"photo": "10647.jpg", "reason": "unlabelled", "detail": "no row in styles.csv"}]
    assert report["kept_by_view"] == {"flat": 2, "on_model": 3}
    assert report["kept_by_frame"] == {"flat/box": 2, "on_model/box": 1, "on_model/pose": 2}
    for name, m in meta.items():  # The label vector says the view the metadata says.
        idx = fnames.index(name)
        assert raw[idx, view["offset"] + view["values"].index(m["view"])] == 1.0


def test_same_inputs_same_bytes_whatever_the_worker_count(fashion_zip: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    prepare_fashion(
        FASHION / "images", out=again, options=FashionOptions(res=64), labels=FASHION / "styles.csv",
        min_count=2, workers=2, progress=False,
    )  # fmt: skip
    assert again.read_bytes() == fashion_zip.read_bytes()
    assert not (tmp_path / "again.zip.partial").exists()


def test_torch_dataset(fashion_zip: Path) -> None:
    ds = ImageZipDataset(fashion_zip)
    assert len(ds) == 5 and ds.resolution == 64 and ds.num_channels == 3
    assert ds.label_schema is not None and ds.label_dim == ds.label_schema["dim"]
    image, label = ds[0]
    assert image.dtype == torch.uint8 and list(image.shape) == [3, 64, 64]
    assert label.dtype == torch.float32 and list(label.shape) == [ds.label_dim]
    names = [ds.label_names(i) for i in range(len(ds))]
    assert {n["view"] for n in names} == {"flat", "on_model"}
    assert sorted(n["articleType"] for n in names) == ["Tshirts"] * 4 + ["other"]
    assert torch.equal(ds.get_label(1), ds[1][1])

    flipped = ImageZipDataset(fashion_zip, xflip=True)
    assert len(flipped) == 10 and flipped.is_flipped(6) and not flipped.is_flipped(1)
    assert torch.equal(flipped[6][0], flipped[1][0].flip(-1))
    assert torch.equal(flipped[6][1], flipped[1][1])
    assert flipped.label_names(6) == flipped.label_names(1)

    no_labels = ImageZipDataset(fashion_zip, use_labels=False)
    assert no_labels.label_dim == 0 and list(no_labels[0][1].shape) == [0]
    small = ImageZipDataset(fashion_zip, max_size=2)
    assert len(small) == 2 and len({small.image_name(0), small.image_name(1)}) == 2
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    images, labels = next(iter(loader))
    assert list(images.shape) == [2, 3, 64, 64] and list(labels.shape) == [2, ds.label_dim]


def test_torch_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such dataset"):
        ImageZipDataset(tmp_path / "none.zip")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a zip"):
        ImageZipDataset(bad)
    unlabelled = tmp_path / "partial.zip"
    with zipfile.ZipFile(unlabelled, "w") as zf:
        zf.writestr("a.png", (DATA / "faces" / "celeba" / "000001.jpg").read_bytes())
        zf.writestr("dataset.json", json.dumps({"labels": []}))
    with pytest.raises(InputError, match="no label for 1 images"):
        ImageZipDataset(unlabelled)


def test_jpeg_members_groups_and_class_folders(tmp_path: Path) -> None:
    out = tmp_path / "jpg.zip"
    result = prepare_fashion(
        FASHION / "images", out=out, options=FashionOptions(res=64, image_format="jpg", quality=80),
        labels=FASHION / "styles.csv", groups="builtin", min_count=1, workers=0, progress=False,
        where=["articleType=Tshirts"],
    )  # fmt: skip
    assert result.report["settings"]["excluded_by_where"] == 2  # The jeans, and the photo without a row.
    ds = ImageZipDataset(out)
    assert ds.image_name(0).endswith(".jpg") and ds.resolution == 64
    assert [c["name"] for c in ds.label_schema["columns"]] == ["articleGroup", "colourGroup", "gender", "view"]  # type: ignore[index]
    assert ds.label_names(0)["articleGroup"] == "tops"

    folders = tmp_path / "classes"
    for cls, photo in (("tees", "10025.jpg"), ("models", "10057.jpg")):
        (folders / cls).mkdir(parents=True)
        shutil.copy(FASHION / "images" / photo, folders / cls / photo)
    out2 = tmp_path / "classes.zip"
    prepare_fashion(folders, out=out2, options=FashionOptions(res=32), min_count=1, workers=0, progress=False)
    names = sorted(str(ImageZipDataset(out2).label_names(i)) for i in range(2))
    assert names == ["{'class': 'models', 'view': 'on_model'}", "{'class': 'tees', 'view': 'flat'}"]


def test_viton_layout(tmp_path: Path) -> None:
    out = tmp_path / "viton.zip"
    result = prepare_viton(DATA / "viton", out=out, options=FashionOptions(res=64), workers=0, progress=False)
    assert result.report["kept_by_view"] == {"flat": 1, "on_model": 1}
    ds = ImageZipDataset(out)
    assert [c["name"] for c in ds.label_schema["columns"]] == ["view"]  # type: ignore[index]
    with zipfile.ZipFile(out) as zf:
        sources = {m["source"]: m["view"] for m in read(zf, "metadata.json")["images"].values()}
    assert sources == {"cloth/00055_00.jpg": "flat", "image/00055_00.jpg": "on_model"}
    with pytest.raises(InputError, match="image/ and cloth/"):
        prepare_viton(FASHION, out=tmp_path / "x.zip", options=FashionOptions(), workers=0, progress=False)


def test_faces_zip_with_celeba_attributes(tmp_path: Path) -> None:
    out = tmp_path / "faces.zip"
    result = prepare_faces(
        FACES / "celeba", out=out, options=FaceOptions(res=32), attributes=FACES / "celeba" / "list_attr_celeba.txt",
        columns=["Male", "Smiling"], workers=0, progress=False,
    )  # fmt: skip
    assert result.report["images"] == 2
    ds = ImageZipDataset(out)
    assert ds.resolution == 32 and ds.label_dim == 4
    assert [ds.label_names(i) for i in range(2)] == [{"Male": "no", "Smiling": "yes"}, {"Male": "no", "Smiling": "yes"}]
    with zipfile.ZipFile(out) as zf:
        meta = read(zf, "metadata.json")["images"]
    first = meta["00000/img00000000.png"]
    assert first["source"] == "000001.jpg" and len(first["quad"]) == 4 and first["coverage"] > 0.9


def test_faces_without_labels_and_skip_reasons(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FACES / "photos" / "obama_small.jpg", photos / "a.jpg")
    shutil.copy(FASHION / "images" / "10025.jpg", photos / "b.jpg")  # A T-shirt: no face.
    (photos / "c.jpg").write_bytes(b"\xff\xd8broken")
    out = tmp_path / "faces.zip"
    result = prepare_faces(photos, out=out, options=FaceOptions(res=64), workers=0, progress=False)
    assert result.report["skipped_by_reason"] == {"unreadable": 1, "no_face": 1}
    with zipfile.ZipFile(out) as zf:
        assert read(zf, "dataset.json")["labels"] is None and "label_schema.json" not in zf.namelist()
    ds = ImageZipDataset(out)
    assert len(ds) == 1 and ds.label_dim == 0 and ds.label_schema is None


def test_cli_fashion_info_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.zip"
    args = ["dataset", "fashion", "--images", str(FASHION / "images"), "--labels", str(FASHION / "styles.csv"),
            "--out", str(out), "--res", "32", "--min-count", "1", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "6 photos -> 5 images (32x32 png)" in printed
    assert "framed by box 1, pose 2" in printed and "unlabelled" in printed
    assert ImageZipDataset(out).resolution == 32

    assert main(args) == 1  # The zip exists: refused without --overwrite, in one line.
    err = capsys.readouterr().err
    assert "exists (pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--overwrite", "--views", "on_model", "--headless", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "no_person" in printed and "low_visibility" in printed

    assert main(["dataset", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "view [offset" in info and "on_model (2)" in info  # The last run kept 2 on-model photos.

    bad = ["dataset", "fashion", "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o.zip")]
    assert main(bad) == 1
    assert "not a folder" in capsys.readouterr().err
    assert main([*args, "--columns", "colour", "--overwrite"]) == 1
    assert "no label column" in capsys.readouterr().err


def _explode(item: Item, options: object) -> Outcome:
    if item.key == "b":
        raise ValueError("a photo that breaks the detector")
    if item.key == "stop":
        raise KeyboardInterrupt
    data = encode_image(PIL.Image.new("RGB", (8, 8)), "png", 95)
    return Outcome(key=item.key, outputs=[Output(data=data, view=None, meta={})])


def test_an_error_is_reported_and_an_interrupt_leaves_no_zip(tmp_path: Path) -> None:
    plan = LabelPlan(columns=[], value=lambda c, r: "", fixed_values={})
    kwargs = dict(rows=None, plan=plan, res=8, image_format="png", workers=0, tool="t", settings={}, progress=False)
    out = tmp_path / "x.zip"
    result = build_dataset([Item("a", "a"), Item("b", "b")], _explode, None, out=out, **kwargs)  # type: ignore[arg-type]
    assert result.report["skipped"] == [
        {"photo": "b", "reason": "error", "detail": "ValueError: a photo that breaks the detector"}
    ]
    assert result.report["images"] == 1
    out.unlink()
    with pytest.raises(KeyboardInterrupt):
        build_dataset([Item("a", "a"), Item("stop", "stop")], _explode, None, out=out, **kwargs)  # type: ignore[arg-type]
    assert not out.exists() and not (tmp_path / "x.zip.partial").exists()
