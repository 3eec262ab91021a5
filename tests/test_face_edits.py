"""Face edits (tryon.face.directions / edits / instructions / mixing, `tryon face-directions`, `tryon edit`):
the direction math recovers what was planted, edits land on the right layers by the right amount and
stack, conditional edits keep the kept attribute's score, instructions parse (and refuse unknown
words), mixing and composition work, and the fitting CLI and `tryon edit` run end to end on a tiny
generator. The shipped directions must belong to the shipped generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tryon.checkpoint import save_checkpoint
from tryon.errors import CheckpointError, InputError
from tryon.face import EDIT_NAMES, EDIT_RANGES, FaceLatent, edit_latent, parse_instruction
from tryon.face.directions import (
    Direction,
    DirectionSet,
    conditional_direction,
    fit_attribute_normal,
    layer_groups,
    pca_directions,
    resolve_layers,
    sefa_directions,
    symmetry_axis,
)
from tryon.face.edits import edit_face, edit_ws, face_directions
from tryon.face.mixing import compose_faces, mix_styles, region_mask
from tryon.face.models import FEATURES_DIR, FaceModels, load_face_models, render_face
from tryon.nn import Discriminator, Generator

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY_G = {
    "z_dim": 16,
    "c_dim": 0,
    "w_dim": 16,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
    "synthesis_kwargs": {"channel_base": 256, "channel_max": 16},
}
TINY_D = {"c_dim": 0, "img_resolution": 16, "img_channels": 3, "channel_base": 256, "channel_max": 16}


def save_tiny_face_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random unconditional 16² face G + D, saved like tryon/assets/face."""
    torch.manual_seed(seed)
    G = Generator(**TINY_G).eval()  # type: ignore[arg-type]
    D = Discriminator(**TINY_D).eval()  # type: ignore[arg-type]
    return save_checkpoint(
        directory, {"G_ema": G, "D": D},
        {"networks": {"G_ema": {"kwargs": TINY_G}, "D": {"kwargs": TINY_D}}, "training": {"kimg": 0.0}},
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> FaceModels:
    """Tiny face models with the shipped attribute classifier and directions fitted into DIR/directions."""
    from training.face_directions import fit_face_directions

    directory = save_tiny_face_checkpoint(tmp_path_factory.mktemp("face") / "tiny")
    models = load_face_models(directory, encoder=False, classifier=FEATURES_DIR)
    dset = fit_face_directions(models, num_samples=240, probe=8, batch_size=64)
    dset.save(directory / "directions")
    return models


def random_latent(models: FaceModels, seed: int) -> FaceLatent:
    z = torch.randn([1, models.G.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = models.G.mapping(z, None)[0].numpy()
    return FaceLatent(ws=ws, meta={"generator_sha256": models.generator_sha256})


# ----------------------------------------------------------------------------------------------------
# Layer groups.


@pytest.mark.parametrize(
    ("num_ws", "expected"),
    [
        (10, {"coarse": (0, 3), "middle": (3, 7), "fine": (7, 10)}),      # 64²: the shipped face G.
        (6, {"coarse": (0, 3), "middle": (3, 5), "fine": (5, 6)}),        # 16².
        (18, {"coarse": (0, 3), "middle": (3, 7), "fine": (7, 18)}),      # 1024² (FFHQ).
    ],
)
def test_layer_groups_follow_the_resolution_of_each_layer(num_ws: int, expected: dict[str, tuple[int, int]]) -> None:
    assert layer_groups(num_ws) == expected
    res = 2 ** ((num_ws + 2) // 2)
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=res, img_channels=3,
                  synthesis_kwargs={"channel_base": 4 * res, "channel_max": 4})
    ranges = G.synthesis.block_ws_ranges()
    assert G.num_ws == num_ws
    assert expected["coarse"][1] == ranges.get(16, (num_ws - 1, 0))[0]  # Coarse ends where 16² starts.


def test_resolve_layers() -> None:
    assert resolve_layers("coarse+middle", 10) == (0, 7)
    assert resolve_layers("all", 10) == (0, 10)
    assert resolve_layers((2, 5), 10) == (2, 5)
    for bad in ("coarse+fine", "nose", (5, 2), (0, 11)):
        with pytest.raises(InputError):
            resolve_layers(bad, 10)


# ----------------------------------------------------------------------------------------------------
# Direction math.


def test_fit_attribute_normal_recovers_a_planted_direction() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=16)
    true /= np.linalg.norm(true)
    w = rng.normal(size=(2000, 16)) * rng.uniform(0.5, 2.0, size=16) + 3.0  # Anisotropic, off-centre.
    score = w @ true * 2.0 + rng.normal(scale=0.3, size=2000)
    normal, metrics = fit_attribute_normal(w[:1600], score[:1600], w[1600:], score[1600:])
    assert abs(np.linalg.norm(normal) - 1) < 1e-5
    assert float(normal @ true) > 0.95
    assert metrics["val_accuracy"] > 0.95 and metrics["val_correlation"] > 0.9


def test_conditional_direction_is_orthogonal_to_the_kept_normals() -> None:
    rng = np.random.default_rng(1)
    primal, c1, c2 = (rng.normal(size=16) for _ in range(3))
    d = conditional_direction(primal, [c1, c2])
    assert abs(np.linalg.norm(d) - 1) < 1e-5
    assert abs(float(d @ c1)) < 1e-4 and abs(float(d @ c2)) < 1e-4
    assert float(d @ primal) > 0
    with pytest.raises(InputError, match="same direction"):
        conditional_direction(primal, [primal * 2])


def test_sefa_and_pca() -> None:
    torch.manual_seed(0)
    G = Generator(**TINY_G).eval()  # type: ignore[arg-type]
    vecs, eig = sefa_directions(G, (0, 3), k=4)
    assert vecs.shape == (4, 16) and np.all(np.diff(eig) <= 1e-9)
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(4), atol=1e-5)
    # The top eigenvector maximises |A v| over unit vectors: no random unit vector does better.
    syn: Any = G.synthesis
    A = torch.cat([syn.b4.conv1.affine.weight, syn.b8.conv0.affine.weight, syn.b8.conv1.affine.weight])
    A = A.detach().double()
    A = A / A.norm(dim=0, keepdim=True)
    top = float((A @ torch.from_numpy(vecs[0]).double()).norm())
    rand = torch.randn(100, 16, dtype=torch.float64)
    assert top >= float((A @ (rand / rand.norm(dim=1, keepdim=True)).T).norm(dim=0).max()) - 1e-6

    rng = np.random.default_rng(2)
    w = rng.normal(size=(3000, 8)) * np.array([5, 1, 1, 1, 1, 1, 1, 0.5])
    comps, stds = pca_directions(w, k=3)
    assert abs(abs(comps[0, 0]) - 1) < 0.01 and abs(stds[0] - 5) < 0.3


def test_symmetry_axis_measures_a_sideways_shift() -> None:
    x = torch.linspace(-1, 1, 32)
    base = torch.exp(-((x[None, :] / 0.3) ** 2)) * torch.linspace(0.2, 1, 32)[:, None]  # Symmetric about the centre.
    img = base[None, None].repeat(1, 3, 1, 1) * 2 - 1
    assert abs(float(symmetry_axis(img)[0])) < 0.1
    for shift in (-3, 2):
        moved = torch.roll(img, shifts=shift, dims=-1)
        assert abs(float(symmetry_axis(moved)[0]) - shift) < 0.3


def test_landmark_yaw_reads_a_real_face_and_its_mirror_image_with_opposite_signs() -> None:
    from training.face_directions import landmark_yaw
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    aligned = align_face(load_image(REPO_ROOT / "tests" / "data" / "faces" / "photos" / "obama_small.jpg"), 64)[0]
    img = torch.from_numpy(np.asarray(aligned.image, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    yaw = landmark_yaw(torch.cat([img, img.flip(-1), torch.zeros_like(img)]))
    assert torch.isfinite(yaw[:2]).all() and float(yaw[0] * yaw[1]) < 0 and abs(float(yaw[0])) < 20
    assert torch.isnan(yaw[2])                                      # No face: NaN, not a number.


# ----------------------------------------------------------------------------------------------------
# Instructions.


def test_parse_instruction() -> None:
    assert parse_instruction("older, smiling, no glasses") == {"age": 10.0, "smile": 1.0, "glasses": -1.0}
    assert parse_instruction("a bit younger and much more feminine") == {"age": -5.0, "gender": -1.5}
    assert parse_instruction("Make me look less serious; with a hat") == {"smile": 0.5, "hat": 1.0}
    assert parse_instruction("extremely old") == {"age": EDIT_RANGES["age"][1]}  # Clamped to the range.
    assert parse_instruction("turned left, clean-shaven") == {"pose": -1.0, "beard": -1.0}
    assert set(parse_instruction("blond hair, bald, mustache, makeup")) == {"blond_hair", "bald", "mustache", "makeup"}
    with pytest.raises(InputError, match=r"'purple'.*'wizard'"):
        parse_instruction("purple hair, wizard")
    for empty in ("", "  ,  ", "no"):
        with pytest.raises(InputError, match="nothing to edit"):
            parse_instruction(empty)


# ----------------------------------------------------------------------------------------------------
# Edits.


def _toy_set(num_ws: int = 10, w_dim: int = 4) -> DirectionSet:
    eye = np.eye(w_dim, dtype=np.float32)
    d = {
        "age": Direction("age", eye[0], 0.1, (0, num_ws), (-15, 15), "attribute", "u", "older", "Young", -1),
        "smile": Direction("smile", eye[1], 2.0, (3, 7), (-1.5, 1.5), "attribute", "u", "smile", "Smiling"),
        "pose": Direction("pose", (eye[0] + eye[2]) / np.sqrt(2), 1.0, (0, 3), (-1.5, 1.5), "sefa", "u", "pose"),
    }
    return DirectionSet(directions=d, normals={"Male": eye[3], "Young": -eye[0]}, w_dim=w_dim, num_ws=num_ws,
                        generator={"sha256": "x"})


def test_edits_land_on_their_layers_and_stack() -> None:
    dset = _toy_set()
    ws = torch.zeros(10, 4)
    out = edit_ws(dset, ws, {"age": 10, "smile": 0.5})
    np.testing.assert_allclose(out[:, 0].numpy(), np.full(10, 1.0), atol=1e-6)        # 10 × 0.1 on every layer.
    np.testing.assert_allclose(out[:, 1].numpy(), [0, 0, 0, 1, 1, 1, 1, 0, 0, 0], atol=1e-6)  # Middle only.
    moved = edit_ws(dset, ws, {"smile": 0.5}, layers="fine")
    np.testing.assert_allclose(moved[:, 1].numpy(), [0] * 7 + [1] * 3, atol=1e-6)
    twice = edit_ws(dset, edit_ws(dset, ws, {"age": 5}), {"age": 5})
    torch.testing.assert_close(twice, edit_ws(dset, ws, {"age": 10}))
    assert torch.equal(ws, torch.zeros(10, 4))                                          # Input untouched.


def test_keep_holds_the_kept_attribute_score() -> None:
    dset = _toy_set()
    ws = torch.zeros(10, 4)
    young = dset.normals["Young"]
    plain = edit_ws(dset, ws, {"pose": 1.0})
    kept = edit_ws(dset, ws, {"pose": 1.0}, keep=["Young"])
    assert abs(float(plain[0].numpy() @ young)) > 0.5       # Pose leaks into age...
    assert abs(float(kept[0].numpy() @ young)) < 1e-6       # ...unless age is kept.
    assert float(kept[0].norm()) == pytest.approx(1.0, abs=1e-5)  # Same step length.
    with pytest.raises(InputError, match="keep it fixed"):
        edit_ws(dset, ws, {"age": 1}, keep=["age"])
    with pytest.raises(InputError, match="no attribute normal"):
        edit_ws(dset, ws, {"pose": 1}, keep=["wings"])


def test_edit_latent_checks_its_input(tiny: FaceModels) -> None:
    latent = random_latent(tiny, 0)
    with pytest.raises(InputError, match=r"unknown edit name.*'wings'.*known: age"):
        edit_latent(tiny, latent, {"wings": 1})
    with pytest.raises(InputError, match=r"within \[-15, 15\]"):
        edit_latent(tiny, latent, {"age": 40})
    with pytest.raises(InputError, match="finite"):
        edit_latent(tiny, latent, {"smile": float("nan")})
    with pytest.raises(InputError, match="'frobnicate'"):
        edit_latent(tiny, latent, instruction="frobnicate")
    edited = edit_latent(tiny, latent, {"age": 5}, instruction="smiling, older", keep=["gender"])
    assert edited.meta["edits"][-1]["strengths"] == {"age": 5.0, "smile": 1.0}  # Explicit strengths win.
    assert edited.meta["edits"][-1]["keep"] == ["gender"]
    assert not np.array_equal(edited.ws, latent.ws)
    assert render_face(tiny, edited).size == (16, 16)


def test_edit_face_mixes_edits_and_renders_in_one_call(tiny: FaceModels) -> None:
    latent, other = random_latent(tiny, 0), random_latent(tiny, 1)
    edited = edit_face(tiny, latent, {"age": 5}, "smiling", keep=["gender"], mix=other, mix_groups=["fine"])
    want = edit_latent(tiny, mix_styles(latent, other, groups=["fine"]), {"age": 5}, "smiling", keep=["gender"])
    assert np.array_equal(edited.latent.ws, want.ws)
    assert edited.strengths == {"age": 5.0, "smile": 1.0}  # The instruction's words, applied.
    assert np.array_equal(np.asarray(edited.image), np.asarray(render_face(tiny, want)))
    untouched = edit_face(tiny, latent)  # Nothing to do: the latent as it is, rendered.
    assert untouched.latent is latent and untouched.strengths == {}
    with pytest.raises(InputError, match="unknown edit name"):
        edit_face(tiny, latent, {"wings": 1})


def test_fitted_directions_for_a_tiny_generator(tiny: FaceModels) -> None:
    dset = face_directions(tiny)
    assert set(EDIT_NAMES) <= set(dset.directions)
    assert {f"sefa{k}" for k in range(8)} | {f"pca{k}" for k in range(8)} <= set(dset.directions)
    assert len(dset.normals) == 40 and dset.generator["sha256"] == tiny.generator_sha256
    for name in EDIT_NAMES:
        d = dset.directions[name]
        assert abs(np.linalg.norm(d.vector) - 1) < 1e-4 and d.scale > 0 and d.range == EDIT_RANGES[name]
    assert dset.directions["age"].attribute == "Young" and dset.directions["age"].sign == -1
    assert "response" in dset.directions["smile"].metrics
    back = DirectionSet.load(dset.directory)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.directions["pose"].vector, dset.directions["pose"].vector)


def test_directions_of_another_generator_are_refused(tiny: FaceModels, tmp_path: Path) -> None:
    other = load_face_models(save_tiny_face_checkpoint(tmp_path / "other", seed=1), encoder=False, classifier=False)
    with pytest.raises(CheckpointError, match="another generator"):
        face_directions(other, tiny.directory / "directions")


def test_shipped_directions_belong_to_the_shipped_generator() -> None:
    models = load_face_models(encoder=False, classifier=False)
    dset = face_directions(models)  # CheckpointError if the G was replaced and the directions not refitted.
    assert set(EDIT_NAMES) <= set(dset.directions)
    card = (dset.directory / "MODEL_CARD.md").read_text()  # type: ignore[operator]
    assert models.generator_sha256 in card


# ----------------------------------------------------------------------------------------------------
# Mixing and composition.


def test_mix_styles_takes_the_groups_from_b() -> None:
    a = FaceLatent(ws=np.zeros((10, 4), np.float32), meta={"source": "a"})
    b = FaceLatent(ws=np.ones((10, 4), np.float32), meta={"source": "b"})
    fine = mix_styles(a, b, "fine")
    assert fine.ws[:, 0].tolist() == [0] * 7 + [1] * 3
    both = mix_styles(a, b, ("coarse", "fine"))
    assert both.ws[:, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    assert mix_styles(a, b, (2, 4)).ws[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(InputError):
        mix_styles(a, FaceLatent(ws=np.ones((6, 4), np.float32)), "fine")
    with pytest.raises(InputError, match="unknown layer group"):
        mix_styles(a, b, "hair")


def test_region_masks_cover_their_landmarks() -> None:
    eyes, mouth, hair = (region_mask(r, 64)[0, 0] for r in ("eyes", "mouth", "hair"))
    assert eyes[30, 24] > 0.9 and eyes[30, 40] > 0.9 and eyes[47, 32] < 0.05     # Eye centres, not the mouth.
    assert mouth[47, 32] > 0.9 and mouth[30, 24] < 0.05
    assert hair[3, 32] > 0.9 and hair[40, 32] < 0.05                              # Top of the head, not the face.
    with pytest.raises(InputError, match="unknown region"):
        region_mask("ears", 64)


def test_composition_matches_a_inside_and_b_outside(tiny: FaceModels) -> None:
    a, b = random_latent(tiny, 1), random_latent(tiny, 2)
    start = compose_faces(tiny, a, b, "hair", steps=0)
    done = compose_faces(tiny, a, b, "hair", steps=40, lr=0.05)
    assert done.metrics["psnr_collage"] > start.metrics["psnr_collage"]
    assert done.latent.ws.shape == a.ws.shape and done.image.size == (16, 16)


# ----------------------------------------------------------------------------------------------------
# Command line.


def _tryon(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `tryon ARGS` in this process -> (exit code, stdout, stderr)."""
    from tryon.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_face_directions_and_edit(tiny: FaceModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tiny.directory
    out = tmp_path / "dirs"
    rc, _, err = _tryon(capsys, "face-directions", "--checkpoint", str(ckpt), "--out", str(out), "--samples", "120",
                        "--probe", "4", "--classifier", str(FEATURES_DIR))
    assert rc == 0, err
    doc = json.loads((out / "directions.json").read_text())
    assert doc["generator"]["sha256"] == tiny.generator_sha256 and (out / "MODEL_CARD.md").is_file()
    assert (out / "edits_grid.png").is_file()
    rc, _, err = _tryon(capsys, "face-directions", "--checkpoint", str(ckpt), "--out", str(out))
    assert rc == 1 and "--force" in err

    random_latent(tiny, 3).save(tmp_path / "latent.npz")
    edited = tmp_path / "edited.png"
    rc, stdout, err = _tryon(capsys, "edit", str(tmp_path), "--checkpoint", str(ckpt), "--directions", str(out),
                             "--age", "+10", "--smile", "0.5", "--instruction", "no glasses", "--keep", "gender",
                             "--compare", "--out", str(edited), "--save-latent", str(tmp_path / "edited.npz"))
    assert rc == 0, err
    assert "age +10" in stdout
    from PIL import Image

    assert Image.open(edited).size == (32, 16)
    assert FaceLatent.load(tmp_path / "edited.npz").meta["edits"][0]["strengths"] == {
        "glasses": -1.0, "age": 10.0, "smile": 0.5}
    rc, _, err = _tryon(capsys, "edit", str(tmp_path), "--checkpoint", str(ckpt), "--directions", str(out),
                        "--edit", "wings=1", "--out", str(edited))
    assert rc == 1 and err.strip().splitlines()[-1].startswith("tryon edit: error: unknown edit name")
    rc, stdout, _ = _tryon(capsys, "edit", "--list", "--checkpoint", str(ckpt), "--directions", str(out))
    assert rc == 0 and "pose" in stdout and "sefa0" in stdout
