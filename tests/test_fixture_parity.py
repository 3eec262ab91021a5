"""Numerical parity with NVlabs stylegan2-ada-pytorch (../shared/fixtures/sg2_cond64_small.npz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tryon.nn import Discriminator, Generator

IMG_TOL = 1e-4
WS_TOL = 1e-5


class Fixture:
    def __init__(self, path: Path) -> None:
        self.data = np.load(path, allow_pickle=False)
        self.kwargs = json.loads(str(self.data["kwargs_json"]))

    def __getitem__(self, key: str) -> torch.Tensor:
        return torch.from_numpy(self.data[key])

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: self[k] for k in self.data.files if k.startswith(prefix)}


FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "sg2_cond64_small.npz"


@pytest.fixture(scope="module")
def fx() -> Fixture:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is absent (the shared fixtures folder is not next to this checkout)")
    return Fixture(FIXTURE)


@pytest.fixture(scope="module")
def G(fx: Fixture) -> Generator:
    G = Generator(**fx.kwargs["G_kwargs"]).eval()
    G.load_state_dict(fx.state("G/"), strict=True)
    return G


@pytest.fixture(scope="module")
def D(fx: Fixture) -> Discriminator:
    D = Discriminator(**fx.kwargs["D_kwargs"]).eval()
    D.load_state_dict(fx.state("D/"), strict=True)
    return D


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    assert actual.shape == expected.shape
    err = float((actual.detach() - expected).abs().max())
    assert err <= tol, f"max abs error {err:.3g} > {tol:.1g}"


def test_state_dicts_have_exactly_the_fixture_names(fx: Fixture, G: Generator, D: Discriminator) -> None:
    assert set(G.state_dict()) == set(fx.state("G/"))
    assert set(D.state_dict()) == set(fx.state("D/"))
    for name, t in G.state_dict().items():
        assert t.shape == fx[f"G/{name}"].shape, name


@pytest.mark.parametrize(
    ("key", "psi", "cutoff"),
    [("out/ws_psi1", 1.0, None), ("out/ws_psi0.7", 0.7, None), ("out/ws_psi0.7_cutoff4", 0.7, 4)],
)
def test_mapping(fx: Fixture, G: Generator, key: str, psi: float, cutoff: int | None) -> None:
    with torch.no_grad():
        ws = G.mapping(fx["in/z"], fx["in/c"], truncation_psi=psi, truncation_cutoff=cutoff)
    assert_close(ws, fx[key], WS_TOL)


@pytest.mark.parametrize(
    ("key", "ws_key", "kwargs"),
    [
        ("out/img_psi1", "out/ws_psi1", {"noise_mode": "const"}),
        ("out/img_psi0.7", "out/ws_psi0.7", {"noise_mode": "const"}),
        ("out/img_psi1_unfused", "out/ws_psi1", {"noise_mode": "const", "fused_modconv": False}),
        ("out/img_psi1_noise_none", "out/ws_psi1", {"noise_mode": "none"}),
    ],
)
def test_synthesis(fx: Fixture, G: Generator, key: str, ws_key: str, kwargs: dict) -> None:
    with torch.no_grad():
        img = G.synthesis(fx[ws_key], **kwargs)
    assert_close(img, fx[key], IMG_TOL)


def test_generator_end_to_end(fx: Fixture, G: Generator) -> None:
    with torch.no_grad():
        img = G(fx["in/z"], fx["in/c"], truncation_psi=0.7, noise_mode="const")
    assert_close(img, fx["out/img_psi0.7"], IMG_TOL)


@pytest.mark.parametrize(
    ("key", "img_key"),
    [
        ("out/D_logits_img_psi1", "out/img_psi1"),
        ("out/D_logits_img_psi0.7", "out/img_psi0.7"),
        ("out/D_logits_real", "in/real_img"),
    ],
)
def test_discriminator_logits(fx: Fixture, D: Discriminator, key: str, img_key: str) -> None:
    with torch.no_grad():
        logits = D(fx[img_key], fx["in/c"])
    assert_close(logits, fx[key], IMG_TOL)


def test_discriminator_label_embedding(fx: Fixture, D: Discriminator) -> None:
    with torch.no_grad():
        cmap = D.mapping(None, fx["in/c"])
    assert_close(cmap, fx["out/D_cmap"], WS_TOL)


def test_r1_penalty_double_backward(fx: Fixture, D: Discriminator) -> None:
    real = fx["in/real_img"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, fx["in/c"]).sum(), real, create_graph=True)
    r1 = grad.square().sum(dim=[1, 2, 3])
    assert_close(r1, fx["out/r1_penalty_real"], 1e-4 * max(1.0, float(fx["out/r1_penalty_real"].abs().max())))
    # The penalty must itself be differentiable w.r.t. D's weights (lazy R1 regularisation).
    r1.sum().backward()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    D.zero_grad(set_to_none=True)


def test_nonsaturating_losses(fx: Fixture, G: Generator, D: Discriminator) -> None:
    with torch.no_grad():
        img = G.synthesis(fx["out/ws_psi1"], noise_mode="const")
        gen_logits = D(img, fx["in/c"])
        real_logits = D(fx["in/real_img"], fx["in/c"])
    assert_close(F.softplus(-gen_logits), fx["out/loss_G_nonsat_img_psi1"], IMG_TOL)
    assert_close(F.softplus(gen_logits) + F.softplus(-real_logits), fx["out/loss_D_nonsat"], IMG_TOL)
