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


# ----------------------------------------------------------------------------------------------------
# The high-fidelity path: the shopper's own photo is the face; edits are the generator's change.


def _luma_correlation(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    weights = np.array([0.299, 0.587, 0.114])
    la, lb = a[where].astype(np.float64) @ weights, b[where].astype(np.float64) @ weights
    return float(np.corrcoef(la, lb)[0, 1])


def test_the_generator_change_is_added_to_the_photo_inside_the_face_only() -> None:
    from tryon.composite.photo_edit import apply_edit_to_photo, face_region

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))
    recon = Image.fromarray(np.full((64, 64, 3), 100, np.uint8))
    same = apply_edit_to_photo(photo, recon, recon.copy())
    assert np.array_equal(np.asarray(same.image), np.asarray(photo)) and same.change == 0.0
    brighter = apply_edit_to_photo(photo, recon, Image.fromarray(np.full((64, 64, 3), 110, np.uint8)))
    diff = np.asarray(brighter.image).astype(int) - np.asarray(photo).astype(int)
    region = face_region(160)
    inside, outside = region > 0.99, region < 0.01
    unclipped = (np.asarray(photo) < 240).all(axis=2)
    assert np.abs(diff[inside & unclipped] - 10).max() <= 1  # A small change: added, the photo's detail kept.
    assert np.abs(diff[outside]).max() == 0 and brighter.structure == 0.0
    # A large change (new structure) replaces the photo's detail there: the result follows the edit.
    bold = apply_edit_to_photo(photo, recon, Image.fromarray(np.full((64, 64, 3), 200, np.uint8)))
    assert bold.structure > 0.9 and np.asarray(bold.image)[inside].std() < 0.5 * np.asarray(photo)[inside].std()


@pytest.mark.skipif(not (SHARED / "tryon_examples").is_dir(), reason=f"{SHARED} is absent (real photos)")
def test_a_tryon_shows_the_photo_and_an_edit_changes_only_the_face(pipe: TryOnPipeline) -> None:
    from tryon.composite.photo_edit import face_region
    from tryon.vision.io import load_image
    from tryon.vision.warp import warp_image

    photo = load_image(SHARED / "face_photos" / "obama.jpg")
    model = load_image(SHARED / "tryon_examples" / "idm_human" / "00034_00.jpg")
    latent, crop, _ = pipe.face_source(photo)
    assert crop is not None and 64 < crop.size[0] <= 512

    plain = pipe.try_on_latent(latent, model, photo=crop)
    assert np.array_equal(np.asarray(plain.face), np.asarray(crop)) and plain.image.size == model.size
    generator = pipe.try_on_latent(latent, model)  # The old path: the 64² rendering pasted.
    assert plain.face.size != generator.face.size and any("generator" in n for n in generator.notes)

    def correlation(result: TryOnResult) -> float:
        """Of the composite's face with the photo put where the compositor put the pasted face."""
        M = result.composite.transform * (result.face.size[0] / crop.size[0])  # photo px -> output px.
        M[:, 2] = result.composite.transform[:, 2]
        placed = np.asarray(warp_image(crop, M, result.image.size))
        inner = np.asarray(result.composite.mask) > 240
        return _luma_correlation(np.asarray(result.image), placed, inner)

    # The photo's own pixels (colour-matched) in the face: far closer to it than the generator's face.
    assert correlation(plain) > 0.95 and correlation(plain) > correlation(generator) + 0.1

    smiled = pipe.try_on_latent(latent, model, {"smile": 1.0}, photo=crop)
    assert smiled.edits == {"smile": 1.0} and smiled.face.size == crop.size
    change = np.abs(np.asarray(smiled.face).astype(int) - np.asarray(crop).astype(int)).max(axis=2)
    region = face_region(crop.size[0])
    # Outside the face region the photo is untouched; in the feather's last 1 % at most a rounding level.
    assert change[region > 0.99].mean() > 1.0 and change[region == 0].max() == 0 and change[region < 0.01].max() <= 1
    # The full try-on with the photo takes the same path (the projection cached with its photo).
    full = pipe.try_on(photo, model)
    assert full.photo is not None and np.array_equal(np.asarray(full.face), np.asarray(crop))
