"""try_on in one call (tryon.pipelines) with the shipped face and fashion generators: a latent,
a projection folder or a photo as the face; an outfit spec, an OutfitResult or a photo as the model;
the LRU caches of projections and outfits; precise errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tryon.errors import InputError
from tryon.face.latent import FaceLatent
from tryon.pipelines import LRUCache, TryOnPipeline, TryOnResult

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPEC = {"category": "tops", "colour": "blue", "gender": "Women", "seed": 1, "truncation": 0.7}


@pytest.fixture(scope="module")
def pipe() -> TryOnPipeline:
    return TryOnPipeline(project_steps=2)


def a_latent(pipe: TryOnPipeline, seed: int = 0) -> FaceLatent:
    m = pipe.face_models
    ws = m.w_avg.cpu().numpy()[None].repeat(m.num_ws, 0)
    ws = ws + np.random.default_rng(seed).normal(0, 0.2, ws.shape).astype(np.float32)
    return FaceLatent(ws=ws, meta={"generator_sha256": m.generator_sha256})


def test_lru_cache_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the oldest.
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)
    value, cached = cache.get_or_make("d", lambda: 4)
    assert (value, cached) == (4, False) and cache.get_or_make("d", lambda: 5) == (4, True)


def test_a_latent_on_a_generated_outfit_with_the_outfit_cached(pipe: TryOnPipeline) -> None:
    latent = a_latent(pipe)
    first = pipe.try_on(latent, SPEC)
    assert isinstance(first, TryOnResult)
    assert first.image.size == (512, 512) and first.face.size == (64, 64)
    assert first.outfit is not None and first.outfit.labels["view"] == "on_model" and first.outfit.seed == 1
    assert first.composite.located in ("canonical", "face_mesh") and first.cached == {
        "projection": False,
        "outfit": False,
    }
    assert first.latent is latent and first.edits == {}
    for step in ("face_latent", "edit_render", "outfit", "composite", "total"):
        assert first.timings[step] >= 0
    again = pipe.try_on(latent, SPEC)
    assert again.cached["outfit"] and np.array_equal(np.asarray(again.image), np.asarray(first.image))
    # The OutfitResult itself is accepted too, and a different seed is a different model.
    same = pipe.try_on(latent, first.outfit)
    assert np.array_equal(np.asarray(same.image), np.asarray(first.image))
    other = pipe.try_on(latent, {**SPEC, "seed": 2})
    assert not other.cached["outfit"] and not np.array_equal(np.asarray(other.image), np.asarray(first.image))


def test_a_projection_folder_is_a_face(pipe: TryOnPipeline, tmp_path: Path) -> None:
    latent = a_latent(pipe, seed=3)
    latent.save(tmp_path / "latent.npz")
    from_dir = pipe.try_on(tmp_path, SPEC)
    direct = pipe.try_on(latent, SPEC)
    assert np.array_equal(np.asarray(from_dir.face), np.asarray(direct.face))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"latent\.npz"):
        pipe.try_on(empty, SPEC)


def test_bad_outfits_are_refused(pipe: TryOnPipeline) -> None:
    latent = a_latent(pipe)
    with pytest.raises(InputError, match="on_model"):
        pipe.try_on(latent, {**SPEC, "view": "flat"})
    with pytest.raises(InputError, match="unknown outfit field"):
        pipe.try_on(latent, {**SPEC, "sleeves": "long"})
    with pytest.raises(InputError):
        pipe.try_on(latent, {**SPEC, "colour": "plaid"})
    with pytest.raises(InputError, match="outfit must be"):
        pipe.try_on(latent, 42)  # type: ignore[arg-type]


@pytest.mark.skipif(not (SHARED / "tryon_examples").is_dir(), reason=f"{SHARED} is absent (real photos)")
def test_a_photo_onto_a_real_model_photo_projects_once(pipe: TryOnPipeline) -> None:
    from tryon.vision.io import load_image

    photo = load_image(SHARED / "face_photos" / "obama.jpg")
    model = load_image(SHARED / "tryon_examples" / "idm_human" / "00034_00.jpg")
    first = pipe.try_on(photo, model)
    assert first.composite.located == "face_mesh" and first.image.size == model.size and first.outfit is None
    assert not first.cached["projection"]
    second = pipe.try_on(photo.copy(), model)  # Same pixels, another object: the projection is reused.
    assert second.cached["projection"] and second.face_latent is first.face_latent
    with pytest.raises(InputError, match="no face"):
        pipe.try_on(Image.new("RGB", (200, 200), (120, 160, 200)), model)
