"""garment_variants: seeds, truncation sweep, style mixing by layer group, interpolation in W, colour
by condition. Checked on the latents (what each mode must change and must keep) and the images."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import save_tiny_fashion_models

from tryon.errors import InputError
from tryon.fashion import FashionPipeline, OutfitSpec, garment_variants

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> FashionPipeline:
    return FashionPipeline.from_checkpoint(save_tiny_fashion_models(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def base(pipe: FashionPipeline) -> OutfitSpec:
    return pipe.spec(category="Shirts", colour="Blue", gender="Men", view="flat", seed=3, truncation=0.8)


@pytest.fixture(scope="module")
def other(pipe: FashionPipeline) -> OutfitSpec:
    return pipe.spec(category="Jeans", colour="Black", gender="Women", view="on_model", seed=11, truncation=0.8)


def ws_of(pipe: FashionPipeline, spec: OutfitSpec) -> np.ndarray:
    return pipe.map_specs([spec])[0].cpu().numpy()


def test_mixing_takes_exactly_the_group_from_the_other_garment(
    pipe: FashionPipeline, base: OutfitSpec, other: OutfitSpec
) -> None:
    b, o = ws_of(pipe, base), ws_of(pipe, other)
    results = garment_variants(pipe, base, "mix", other=other, layers=["coarse", "middle", "fine"])
    assert [r.params["layers"] for r in results] == ["coarse", "middle", "fine"]
    for r in results:
        idx = pipe.layer_indices(r.params["layers"])
        rest = [i for i in range(pipe.num_ws) if i not in idx]
        np.testing.assert_allclose(r.ws[idx], o[idx], atol=1e-6)
        np.testing.assert_allclose(r.ws[rest], b[rest], atol=1e-6)
        assert r.seed is None and r.labels == base.labels and r.params["other"]["seed"] == 11
    base_img = np.asarray(garment_variants(pipe, base, "seeds", seeds=[3])[0].image).astype(int)
    assert np.abs(np.asarray(results[0].image).astype(int) - base_img).max() > 5  # Mixing changes the image.


def test_interpolation_runs_from_base_to_other_in_w(pipe: FashionPipeline, base: OutfitSpec, other: OutfitSpec) -> None:
    b, o = ws_of(pipe, base), ws_of(pipe, other)
    results = garment_variants(pipe, base, "interpolate", other=other, steps=5)
    assert [r.params["t"] for r in results] == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(results[0].ws, b, atol=1e-6)
    np.testing.assert_allclose(results[-1].ws, o, atol=1e-6)
    np.testing.assert_allclose(results[2].ws, (b + o) / 2, atol=1e-5)
    assert results[0].seed == 3 and results[2].seed is None


def test_colour_changes_the_condition_and_keeps_the_seed(pipe: FashionPipeline, base: OutfitSpec) -> None:
    results = garment_variants(pipe, base, "colour", colours=["black", "White"])
    assert [r.labels["baseColour"] for r in results] == ["Black", "White"]
    assert all(r.seed == 3 and r.labels["articleType"] == "Shirts" for r in results)
    assert np.abs(results[0].ws - results[1].ws).max() > 1e-3
    everything = garment_variants(pipe, base, "colour")
    assert [r.params["colour"] for r in everything] == ["Black", "White", "Blue"]


def test_seed_and_truncation_sweeps(pipe: FashionPipeline, base: OutfitSpec) -> None:
    seeds = garment_variants(pipe, base, "seeds")
    assert [r.seed for r in seeds] == [4, 5, 6, 7]
    sweep = garment_variants(pipe, base, "truncation", truncations=[0.0, 1.0])
    assert [r.truncation for r in sweep] == [0.0, 1.0]
    mean = pipe.mean_ws(base.labels, num=1).cpu().numpy()  # Any one sample: psi 0 is w_avg itself.
    np.testing.assert_allclose(sweep[0].ws, np.broadcast_to(pipe.G.mapping.w_avg.cpu().numpy(), mean.shape), atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "kwargs", "phrase"),
    [
        ("shuffle", {}, "the modes are: seeds, truncation, mix, interpolate, colour"),
        ("mix", {}, "needs a second garment"),
        ("mix", {"layers": "texture"}, "the groups are: coarse, middle, fine"),
        ("interpolate", {"steps": 1}, "steps must be an integer in 2..64"),
        ("colour", {"colours": ["pink"]}, "its values are: Black, White, Blue"),
        ("truncation", {"truncations": [2.0]}, "truncation must be"),
        ("seeds", {"seeds": list(range(65))}, "at most 64"),
    ],
)
def test_bad_arguments_are_input_errors(
    pipe: FashionPipeline, base: OutfitSpec, other: OutfitSpec, mode: str, kwargs: dict[str, object], phrase: str
) -> None:
    if (mode == "mix" and "layers" in kwargs) or mode == "interpolate":
        kwargs = {**kwargs, "other": other}
    with pytest.raises(InputError, match=phrase):
        garment_variants(pipe, base, mode, **kwargs)  # type: ignore[arg-type]
