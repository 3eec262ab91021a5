"""Face projection (tryon.face: FaceLatent, FaceEncoder, load_face_models, project_face, render_face)
with the shipped face models: latents round-trip, a projection renders back exactly, optimisation
improves on its start, pivotal tuning travels inside the latent without touching the shared G,
projection is thread-safe, and the VGG term's plumbing works with weights in torchvision's format."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tryon.checkpoint import load_checkpoint, save_checkpoint
from tryon.errors import CheckpointError, InputError
from tryon.face import FaceLatent, FaceModels, load_face_models, project_face, render_face
from tryon.face.encoder import FaceEncoder, register_encoder_class, ws_levels
from tryon.face.models import synthesize
from tryon.face.project import ProjectionOptions, VGG16Features, noise_regularization, psnr, ssim

REPO_ROOT = Path(__file__).resolve().parents[1]
FACE_PHOTO = REPO_ROOT / "tests" / "data" / "faces" / "photos" / "obama_small.jpg"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models() -> FaceModels:
    return load_face_models()


@pytest.fixture(scope="module")
def aligned() -> Image.Image:
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    return align_face(load_image(FACE_PHOTO), 256)[0].image


def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------
# FaceLatent.


def test_latent_round_trips_through_bytes_and_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lat = FaceLatent(
        ws=rng.normal(size=(10, 128)).astype(np.float32),
        noise=[rng.normal(size=(r, r)).astype(np.float32) for r in (4, 8, 8)],
        meta={"steps": 5, "generator_sha256": "ab" * 32},
        pti={"b4.conv1.weight@a": rng.normal(size=(2, 9)).astype(np.float16)},
    )
    back = FaceLatent.from_bytes(lat.to_bytes())
    np.testing.assert_array_equal(back.ws, lat.ws)
    assert back.noise is not None and [n.shape for n in back.noise] == [(4, 4), (8, 8), (8, 8)]
    np.testing.assert_array_equal(back.noise[2], lat.noise[2])  # type: ignore[index]
    assert back.meta == lat.meta
    assert back.pti is not None and back.pti["b4.conv1.weight@a"].dtype == np.float16
    path = lat.save(tmp_path / "latent.npz")
    assert FaceLatent.load(tmp_path).meta == lat.meta == FaceLatent.load(path).meta
    plain = FaceLatent(ws=lat.ws)
    assert FaceLatent.from_bytes(plain.to_bytes()).noise is None


def test_latent_refuses_what_it_did_not_write() -> None:
    with pytest.raises(InputError, match="not a face latent"):
        FaceLatent.from_bytes(b"not an npz at all")
    buf = io.BytesIO()
    np.savez(buf, ws=np.zeros((10, 128), np.float32))  # No meta.
    with pytest.raises(InputError, match="not a face latent"):
        FaceLatent.from_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, ws=np.array([{"x": 1}], dtype=object), meta=np.zeros(2, np.uint8))  # A pickle inside.
    with pytest.raises(InputError):
        FaceLatent.from_bytes(buf.getvalue())
    with pytest.raises(InputError, match="NaN"):
        FaceLatent(ws=np.full((10, 128), np.nan, np.float32))
    with pytest.raises(InputError, match="num_ws, w_dim"):
        FaceLatent(ws=np.zeros(128, np.float32))


# ----------------------------------------------------------------------------------------------------
# Encoder.


def test_encoder_levels_shape_and_untrained_start(models: FaceModels, tmp_path: Path) -> None:
    levels = ws_levels(models.G.synthesis.block_ws_ranges(), models.resolution)
    assert levels == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]  # 4-8 px | 16-32 px | 64 px layers.
    enc = FaceEncoder(64, 3, models.w_dim, levels).eval()
    with torch.no_grad():
        enc.w_avg.copy_(models.w_avg)
        ws = enc(torch.rand(2, 3, 256, 256) * 2 - 1)  # Any input size: resized first.
    assert ws.shape == (2, models.num_ws, models.w_dim)
    torch.testing.assert_close(ws, models.w_avg.expand(2, models.num_ws, -1))  # Heads start at zero.
    register_encoder_class()
    save_checkpoint(tmp_path / "enc", {"encoder": enc})
    loaded = load_checkpoint(tmp_path / "enc", names=("encoder",)).networks["encoder"]
    assert isinstance(loaded, FaceEncoder) and loaded.levels == levels


def test_an_encoder_for_another_generator_is_not_used(models: FaceModels, tmp_path: Path) -> None:
    enc = FaceEncoder(64, 3, models.w_dim, [0] * models.num_ws)
    register_encoder_class()
    save_checkpoint(tmp_path / "enc", {"encoder": enc}, {"training": {"generator": {"sha256": "0" * 64}}})
    other = load_face_models(encoder=tmp_path / "enc", classifier=False)
    assert other.encoder is None and "another face generator" in (other.encoder_note or "")
    with pytest.raises(CheckpointError):
        load_face_models(encoder=tmp_path / "missing")


def test_shipped_models(models: FaceModels) -> None:
    assert (models.resolution, models.num_ws, models.w_dim) == (64, 10, 128)
    assert models.classifier is not None and models.w_std > 0
    assert (models.encoder is None) == (models.encoder_note is not None)
    assert not any(p.requires_grad for p in models.G.parameters())


# ----------------------------------------------------------------------------------------------------
# Losses.


def test_similarity_measures() -> None:
    a = torch.rand(1, 3, 64, 64) * 2 - 1
    assert psnr(a, a) == float("inf") and float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    noisy = (a + 0.1 * torch.randn_like(a)).clamp(-1, 1)
    assert 10 < psnr(a, noisy) < 40 and float(ssim(a, noisy)) < 0.99
    white = [torch.randn(64, 64, generator=torch.Generator().manual_seed(0))]
    smooth = [torch.ones(64, 64)]
    assert float(noise_regularization(white)) < 1e-3 < float(noise_regularization(smooth))


# ----------------------------------------------------------------------------------------------------
# Projection.


def test_projection_renders_back_and_optimisation_helps(models: FaceModels, aligned: Image.Image) -> None:
    seen: list[float] = []
    start = project_face(models, aligned, steps=0)
    res = project_face(models, aligned, steps=10, progress=lambda f, m: seen.append(f))
    assert res.image.size == res.target.size == (64, 64) and res.image.mode == "RGB"
    assert res.latent.ws.shape == (10, 128) and res.latent.noise is not None and len(res.latent.noise) == 9
    assert res.latent.meta["generator_sha256"] == models.generator_sha256
    for key in ("psnr", "ssim", "feature_distance", "seconds"):
        assert isinstance(res.metrics[key], float)
    assert res.metrics["psnr"] > start.metrics["psnr"] + 0.5  # 10 steps beat the start.
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    rendered = render_face(models, FaceLatent.from_bytes(res.latent.to_bytes()))
    np.testing.assert_array_equal(np.asarray(rendered), np.asarray(res.image))


def test_bad_arguments(models: FaceModels, aligned: Image.Image) -> None:
    with pytest.raises(InputError, match="steps"):
        project_face(models, aligned, steps=-1)
    with pytest.raises(InputError, match="PIL"):
        project_face(models, np.zeros((64, 64, 3)), steps=0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="needs"):
        render_face(models, FaceLatent(ws=np.zeros((4, 128), np.float32)))


def test_pti_travels_in_the_latent_and_leaves_the_shared_g_alone(models: FaceModels, aligned: Image.Image) -> None:
    before = _state_digest(models.G)
    plain = project_face(models, aligned, steps=3)
    opts = ProjectionOptions(pti_steps=6)
    tuned = project_face(models, aligned, steps=3, pti=True, options=opts)
    assert _state_digest(models.G) == before
    assert tuned.latent.pti and all(v.dtype == np.float16 for v in tuned.latent.pti.values())
    data = tuned.latent.to_bytes()
    assert len(data) < 400_000  # Compact: low-rank deltas, not a copy of G (5 MB).
    again = render_face(models, FaceLatent.from_bytes(data))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(tuned.image))
    assert tuned.metrics["psnr"] > plain.metrics["psnr"]
    # The same latent without its tuning renders as the plain G would.
    bare = render_face(models, tuned.latent.replace(pti=None))
    assert not np.array_equal(np.asarray(bare), np.asarray(tuned.image))


def test_projection_is_thread_safe(models: FaceModels, aligned: Image.Image) -> None:
    alone = project_face(models, aligned, steps=4, seed=1).latent.ws
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = project_face(models, aligned, steps=4, seed=1, pti=i == 0,
                                  options=ProjectionOptions(pti_steps=2)).latent.ws

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        np.testing.assert_allclose(results[i], alone, atol=1e-5)


def test_vgg_term_plumbing_with_random_weights(models: FaceModels, aligned: Image.Image, tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file has the classifier too: ignored.
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    res = project_face(models, aligned, steps=1, vgg=path, options=ProjectionOptions(vgg_resolution=32))
    assert res.metrics["vgg"] is True and "vgg" in res.metrics["final_loss"]
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="VGG16"):
        project_face(models, aligned, steps=1, vgg=tmp_path / "bad.pth")
    with pytest.raises(InputError, match="no such"):
        project_face(models, aligned, steps=1, vgg=tmp_path / "missing.pth")


def test_synthesize_matches_the_generator(models: FaceModels) -> None:
    ws = models.G.mapping(torch.randn(1, models.G.z_dim, generator=torch.Generator().manual_seed(3)), None)
    with torch.no_grad():
        ref = models.G.synthesis(ws, noise_mode="const")
        ours = synthesize(models, ws, [n for n in models.const_noise()])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------------------------------
# `tryon project`.


def test_project_cli_writes_its_five_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tryon.cli import main

    out = tmp_path / "proj"
    assert main(["project", str(FACE_PHOTO), "--out", str(out), "--steps", "2"]) == 0
    names = ["aligned.png", "latent.npz", "metrics.json", "photo.png", "reconstruction.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    # The aligned photo at its own resolution, the face `tryon tryon --face DIR` shows.
    assert 64 < Image.open(out / "photo.png").size[0] == Image.open(out / "photo.png").size[1] <= 512
    capsys.readouterr()
    model = tmp_path / "model.png"
    Image.new("RGB", (64, 64), (230, 230, 230)).save(model)
    result = tmp_path / "tryon.png"
    face_png = str(tmp_path / "f.png")
    args = ["tryon", "--face", str(out), "--outfit", str(model), "--out", str(result), "--save-face", face_png]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["face"] == "photo"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "f.png")), np.asarray(Image.open(out / "photo.png")))
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"psnr", "ssim", "feature_distance", "seconds"} <= set(metrics) and metrics["steps"] == 2
    assert Image.open(out / "reconstruction.png").size == Image.open(out / "aligned.png").size == (64, 64)
    assert FaceLatent.load(out / "latent.npz").ws.shape == (10, 128)

    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (90, 140, 200)).save(blank)
    assert main(["project", str(blank), "--out", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no face" in err[0]
    assert main(["project", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "x")]) == 1
