"""Offline metrics (training/metrics.py) and the domain feature network (training/feature_net.py).

A synthetic labelled dataset makes the classifier's job easy and known: background colour
(red / green / blue), a bar (horizontal / vertical) and a corner dot (no / yes).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from training import metrics as M
from training.feature_net import (
    FeatureNet,
    LabelMap,
    dataset_split,
    load_feature_net,
    save_feature_net,
    split_indices,
    train_feature_net,
    uint8_to_float,
)
from tryon.cli import main as tryon_main

SCHEMA = {
    "columns": [
        {"name": "colour", "values": ["red", "green", "blue"], "offset": 0},
        {"name": "bar", "values": ["horizontal", "vertical"], "offset": 3},
        {"name": "dot", "values": ["no", "yes"], "offset": 5},
    ],
    "dim": 7,
}
RES = 32
COLOURS = np.array([[200, 40, 40], [40, 180, 40], [40, 60, 200]], dtype=np.float32)


def draw(labels: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Label vectors [N, 7] -> uint8 images [N, 3, RES, RES] showing those labels (plus noise)."""
    out = np.empty([len(labels), 3, RES, RES], dtype=np.uint8)
    for i, c in enumerate(labels):
        colour, bar, dot = int(np.argmax(c[0:3])), int(np.argmax(c[3:5])), int(np.argmax(c[5:7]))
        img = np.broadcast_to(COLOURS[colour][:, None, None], [3, RES, RES]).copy()
        img += rng.normal(0, 12, size=img.shape)
        pos = rng.randint(6, RES - 10)
        if bar == 0:
            img[:, pos : pos + 4, 4:-4] = 30
        else:
            img[:, 4:-4, pos : pos + 4] = 30
        if dot:
            img[:, 1:6, 1:6] = 255
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def random_labels(n: int, rng: np.random.RandomState) -> np.ndarray:
    c = np.zeros([n, 7], dtype=np.float32)
    c[np.arange(n), rng.randint(0, 3, n)] = 1
    c[np.arange(n), 3 + rng.randint(0, 2, n)] = 1
    c[np.arange(n), 5 + rng.randint(0, 2, n)] = 1
    return c


class ArrayDataset:
    """In-memory stand-in for datasets.ImageZipDataset: dataset[i] -> (uint8 [C, H, W], labels [7])."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.label_schema = SCHEMA
        self.label_dim = labels.shape[1]
        self.resolution = images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, np.ndarray]:
        return torch.from_numpy(self.images[idx]), self.labels[idx]


def make_dataset(n: int, seed: int = 0) -> ArrayDataset:
    rng = np.random.RandomState(seed)
    labels = random_labels(n, rng)
    return ArrayDataset(draw(labels, rng), labels)


class DrawingGenerator(torch.nn.Module):
    """A fake G that 'generates' fresh synthetic images showing the requested labels."""

    z_dim, c_dim, img_resolution = 4, 7, RES

    def __init__(self, random_images: bool = False) -> None:
        super().__init__()
        self.random_images = random_images
        self.rng = np.random.RandomState(123)

    def forward(self, z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if self.random_images:
            return torch.rand([len(z), 3, RES, RES]) * 2 - 1
        return uint8_to_float(torch.from_numpy(draw(c.numpy(), self.rng)))


@pytest.fixture(scope="module")
def trained() -> tuple[ArrayDataset, FeatureNet, dict[str, dict[str, float]]]:
    dataset = make_dataset(320)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Tiny batches: one thread is many times faster on a busy machine.
    try:
        result = train_feature_net(dataset, epochs=20, resolution=RES, batch_size=32, lr=3e-3, val_fraction=0.25,
                                   net_kwargs={"channels": (8, 16, 32), "feature_dim": 32})
    finally:
        torch.set_num_threads(threads)
    return dataset, result.net, result.val_metrics


# ----------------------------------------------------------------------------------------------------
# The metric formulas.


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    rng = np.random.RandomState(0)
    a = rng.normal(size=[500, 16])
    assert M.frechet_distance(a, a) < 1e-8
    # Same covariance, mean moved by 0.5 in 16 dims: FD = |shift|² = 4 exactly.
    assert M.frechet_distance(a, a + 0.5) == pytest.approx(4.0, abs=1e-6)
    fds = [M.frechet_distance(a, a + s) for s in (0.1, 0.3, 1.0)]
    assert fds == sorted(fds) and fds[0] > 0
    # Scaling the spread changes only the covariance term: FD > 0.
    assert M.frechet_distance(a, a * 1.5) > 1.0


def test_frechet_distance_matches_scipy_sqrtm_and_survives_singular_covariances() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.RandomState(1)
    a = rng.normal(size=[300, 8]) @ rng.normal(size=[8, 8])
    b = rng.normal(size=[200, 8]) @ rng.normal(size=[8, 8]) + 0.3
    mu1, s1 = M.feature_stats(a)
    mu2, s2 = M.feature_stats(b)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    # Fewer samples than dimensions: singular covariances, still finite and ~0 against itself.
    few = rng.normal(size=[10, 64])
    assert 0 <= M.frechet_distance(few, few) < 1e-6
    assert np.isfinite(M.frechet_distance(few, rng.normal(size=[12, 64])))


def test_kid_is_about_zero_for_one_distribution_and_matches_the_unbiased_mmd() -> None:
    rng = np.random.RandomState(0)
    a, b = rng.normal(size=[400, 16]), rng.normal(size=[400, 16])
    same = M.kernel_distance(a, b, num_subsets=20, max_subset_size=200)
    shifted = M.kernel_distance(a, b + 0.5, num_subsets=20, max_subset_size=200)
    assert abs(same) < 0.02 * shifted
    assert shifted > 0.1

    # One subset holding every sample = the textbook unbiased MMD² with k(x, y) = (x·y/D + 1)³.
    x, y = rng.normal(size=[30, 5]), rng.normal(size=[30, 5]) + 0.2

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return float((u @ v / 5 + 1) ** 3)

    m = 30
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert M.kernel_distance(y, x, num_subsets=1, max_subset_size=m) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-9)


def test_precision_recall_identical_disjoint_and_collapsed() -> None:
    rng = np.random.RandomState(0)
    real = rng.normal(size=[300, 8])
    assert M.precision_recall(real, real) == (1.0, 1.0)
    assert M.precision_recall(real, real + 100.0) == (0.0, 0.0)
    # A generator that covers one small part of the real distribution: precise, poor recall.
    collapsed = real[np.argsort(np.linalg.norm(real - real[0], axis=1))[:60]]
    precision, recall = M.precision_recall(real, np.repeat(collapsed, 5, axis=0)[:300])
    assert precision == 1.0
    assert recall < 0.5


def test_precision_uses_the_distance_to_the_kth_neighbour() -> None:
    real = np.arange(10, dtype=np.float64)[:, None]   # 0, 1, ..., 9: every ball with k=3 has radius 3.
    gen = np.array([[11.9], [12.5], [20.0], [30.0]])  # Only 11.9 is within 3 of a real point (9).
    precision, recall = M.precision_recall(real, gen, k=3)
    assert precision == 0.25
    # The ball around 11.9 reaches its 3rd neighbour, 30 (radius 18.1): it holds every real point.
    assert recall == 1.0


def test_split_is_deterministic_and_disjoint() -> None:
    train, held = split_indices(1000, 0.1, seed=0)
    train2, held2 = split_indices(1000, 0.1, seed=0)
    assert len(held) == 100 and len(train) == 900
    assert np.array_equal(held, held2) and np.array_equal(train, train2)
    assert not set(train) & set(held)
    assert not np.array_equal(split_indices(1000, 0.1, seed=1)[1], held)


def test_split_ignores_mirrored_copies() -> None:
    plain = make_dataset(40)

    class Mirrored(ArrayDataset):  # Like ImageZipDataset(xflip=True): a mirrored second half.
        def __len__(self) -> int:
            return 2 * len(self.images)

        def is_flipped(self, idx: int) -> bool:
            return idx >= len(self.images)

    mirrored = Mirrored(plain.images, plain.labels)
    for a, b in zip(dataset_split(plain, 0.2), dataset_split(mirrored, 0.2), strict=True):
        assert np.array_equal(a, b)
    assert len(dataset_split(plain, 0.2)[1]) == 8


def test_label_map_matches_columns_and_values_by_name() -> None:
    net = FeatureNet(SCHEMA, resolution=16, channels=(4, 8))
    # A generator schema with the columns in another order, one value order swapped, an extra column.
    other = {
        "columns": [
            {"name": "bar", "values": ["vertical", "horizontal"]},
            {"name": "extra", "values": ["a", "b"]},
            {"name": "colour", "values": ["blue", "red", "green", "purple"]},
        ]
    }
    c = torch.zeros([3, 8])
    c[0, [0, 4]] = 1      # vertical, blue
    c[1, [1, 5]] = 1      # horizontal, red
    c[2, [1, 7]] = 1      # horizontal, purple (unknown to the net)
    targets = LabelMap(net.heads, other, 8).targets(c)
    assert targets.tolist() == [[2, 1, -1], [0, 0, -1], [-1, 0, -1]]
    # The net's own layout; a column whose entries are all zero is unknown.
    own = torch.tensor([[0, 1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 1, 0]], dtype=torch.float32)
    assert LabelMap(net.heads, None).targets(own).tolist() == [[1, 0, 1], [-1, 1, 0]]


def test_binary_attribute_columns_get_sigmoid_heads() -> None:
    schema = {"columns": [{"name": "Smiling", "values": ["1"]}, {"name": "view", "values": ["flat", "on_model"]}]}
    net = FeatureNet(schema, resolution=16, channels=(4, 8), feature_dim=8).eval()
    assert [h.binary for h in net.heads] == [True, False]
    features, logits = net(torch.zeros([2, 3, 40, 40]))
    assert net.num_features == 8 + 8  # Embedding + the mean of the one stage.
    assert features.shape == (2, 16) and logits.shape == (2, 3)
    assert net.predict(torch.zeros([2, 1, 16, 16])).shape == (2, 2)  # Grayscale is repeated to RGB.
    targets = LabelMap(net.heads, None).targets(torch.tensor([[1.0, 0, 1], [0.0, 1, 0]]))
    assert targets.tolist() == [[1, 1], [0, 0]]


# ----------------------------------------------------------------------------------------------------
# The feature net and the metrics together.


def test_feature_net_learns_the_labels(trained: Any) -> None:
    _, net, val = trained
    for head in net.heads:
        assert val[head.name]["accuracy"] > val[head.name]["majority"] + 0.2, (head.name, val[head.name])
    assert np.mean([v["accuracy"] for v in val.values()]) > 0.9


def test_calibrated_feature_blocks_have_unit_variance(trained: Any) -> None:
    dataset, net, _ = trained
    x = uint8_to_float(torch.from_numpy(dataset.images))
    with torch.no_grad():
        f = net.features(x).double()
    sizes = [net.feature_dim, 16, 32]  # channels (8, 16, 32): the stages end with 16 and 32.
    assert f.shape[1] == sum(sizes)
    for block in f.split(sizes, dim=1):  # Calibrated on 240 of these 320 images: close to 1.
        assert float(block.var(dim=0).sum()) == pytest.approx(1.0, rel=0.25)


def test_feature_net_saves_and_loads_strictly(trained: Any, tmp_path: Path) -> None:
    _, net, _ = trained
    out = save_feature_net(tmp_path / "fn", net, {"epochs": 4})
    loaded = load_feature_net(out)
    x = uint8_to_float(torch.from_numpy(make_dataset(4, seed=5).images))
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x), net.features(x))
    assert loaded.init_kwargs == net.init_kwargs
    assert json.loads((out / "config.json").read_text())["networks"]["feature_net"]["class"] == "FeatureNet"


def test_conditional_accuracy_is_high_for_a_faithful_generator_and_chance_for_noise(trained: Any) -> None:
    dataset, net, _ = trained
    good = M.compute_metrics(DrawingGenerator(), dataset, net, num_gen=200, batch_size=50)
    assert good["cond_acc"] == pytest.approx(good["cond_acc_real"], abs=0.05)
    assert good["cond_acc"] > 0.95
    assert set(good) >= {"cond_acc/colour", "cond_acc/bar", "cond_acc/dot", "fd", "kid", "precision", "recall"}
    noise = M.compute_metrics(DrawingGenerator(random_images=True), dataset, net, num_gen=200, batch_size=50)
    # The prediction no longer depends on the request: about 1/3 for colour, 1/2 for the others.
    assert noise["cond_acc"] < 0.65
    for res in (good, noise):  # The summary is the mean over label columns.
        assert res["cond_acc"] == pytest.approx(np.mean([res[f"cond_acc/{c}"] for c in ("colour", "bar", "dot")]))
    assert noise["cond_acc_real"] == good["cond_acc_real"]
    # Distribution metrics agree: the faithful generator is close to the real images, noise is not.
    assert good["fd"] < 0.1 * noise["fd"]
    assert good["kid"] < 0.1 * noise["kid"]
    assert good["precision"] > 0.8 and good["recall"] > 0.8
    assert noise["precision"] < 0.1


def test_compute_metrics_is_deterministic_and_uses_the_held_out_split(trained: Any) -> None:
    dataset, net, _ = trained
    a = M.compute_metrics(DrawingGenerator(), dataset, net, metrics=("fd", "pr"), num_gen=60, batch_size=32)
    b = M.compute_metrics(DrawingGenerator(), dataset, net, metrics=("fd", "pr"), num_gen=60, batch_size=32)
    assert a["num_real"] == 80  # 25 % of 320, the split the net was trained with.
    assert set(a) == {"fd", "precision", "recall", "num_real", "num_gen"}
    assert a["fd"] == pytest.approx(b["fd"], rel=0.2)  # The fake G draws new noise each call.
    with pytest.raises(ValueError, match="unknown metrics"):
        M.compute_metrics(DrawingGenerator(), dataset, net, metrics=("fid",))


class _FakeInception(torch.nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.to(torch.float32) / 255, 4).flatten(1)
        return pooled if return_features else pooled.softmax(dim=1)


def test_inception_metrics_use_a_user_supplied_torchscript_file(trained: Any, tmp_path: Path) -> None:
    dataset, net, _ = trained
    path = tmp_path / "inception.pt"
    torch.jit.save(torch.jit.script(_FakeInception()), str(path))
    detector = M.load_inception(path)
    res = M.compute_metrics(DrawingGenerator(), dataset, net, metrics=("fd", "kid"), num_gen=40,
                            batch_size=20, inception=detector)
    assert {"inception_fid", "inception_kid"} <= set(res)
    with pytest.raises(ValueError, match="no such Inception file"):
        M.load_inception(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript"):
        M.load_inception(tmp_path / "junk.pt")


# ----------------------------------------------------------------------------------------------------
# CLI.


def write_zip(path: Path, dataset: ArrayDataset) -> Path:
    """An NVlabs-style dataset zip: PNGs + dataset.json {"labels": [[name, vector], ...]} + schema."""
    with zipfile.ZipFile(path, "w") as zf:
        labels = []
        for i, img in enumerate(dataset.images):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            buf = io.BytesIO()
            Image.fromarray(img.transpose(1, 2, 0)).save(buf, format="png")
            zf.writestr(name, buf.getvalue())
            labels.append([name, dataset.labels[i].tolist()])
        zf.writestr("dataset.json", json.dumps({"labels": labels}))
        zf.writestr("label_schema.json", json.dumps(SCHEMA))
    return path


def test_cli_trains_a_feature_net_and_measures_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tryon.checkpoint import save_checkpoint
    from tryon.nn import Generator

    data = write_zip(tmp_path / "toy.zip", make_dataset(96, seed=3))
    fn_dir = tmp_path / "features"
    rc = tryon_main(["feature-net", "--data", str(data), "--out", str(fn_dir), "--epochs", "1",
                     "--val-split", "0.25", "--resolution", "16", "--batch-size", "32"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "colour" in out and "mean validation accuracy" in out
    card = (fn_dir / "MODEL_CARD.md").read_text()
    assert "tryon feature-net --data" in card and "| colour |" in card
    training = json.loads((fn_dir / "config.json").read_text())["training"]
    assert training["epochs"] == 1 and set(training["val_accuracy"]) == {"colour", "bar", "dot"}

    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=7, w_dim=8, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 256, "channel_max": 8})
    ckpt = save_checkpoint(tmp_path / "ckpt", {"G_ema": G}, {
        "networks": {"G_ema": {"kwargs": {"z_dim": 8, "c_dim": 7, "w_dim": 8, "img_resolution": 16,
                                          "img_channels": 3, "mapping_kwargs": {"num_layers": 1},
                                          "synthesis_kwargs": {"channel_base": 256, "channel_max": 8}}}},
        "label_schema": SCHEMA,
    })
    report = tmp_path / "metrics.json"
    rc = tryon_main(["metrics", "--checkpoint", str(ckpt), "--data", str(data), "--feature-net", str(fn_dir),
                     "--num-gen", "24", "--json", str(report)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "fd" in out and "cond_acc" in out and "24 generated, 24 real" in out
    results = json.loads(report.read_text())["results"]
    assert {"fd", "kid", "precision", "recall", "cond_acc", "cond_acc_real"} <= set(results)
    assert all(np.isfinite(v) for v in results.values())

    rc = tryon_main(["metrics", "--checkpoint", str(ckpt), "--data", str(data), "--feature-net", str(fn_dir),
                     "--metrics", "fd,bogus"])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown metrics" in err and len(err.strip().splitlines()) == 1
