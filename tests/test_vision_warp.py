"""Similarity transforms and the shared image warp."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tryon.vision.warp import (
    compose,
    coverage,
    invert_transform,
    similarity_fit,
    similarity_from_points,
    transform_points,
    transform_scale,
    warp_image,
)


def test_similarity_from_points_maps_both_points_exactly() -> None:
    src = np.array([[10.0, 20.0], [30.0, 95.0]])
    dst = np.array([[64.0, 41.0], [64.0, 105.0]])
    M = similarity_from_points(src, dst)
    assert np.allclose(transform_points(M, src), dst)
    # A similarity: equal scale in both axes, no shear.
    A = M[:, :2]
    assert np.isclose(A[0, 0], A[1, 1]) and np.isclose(A[0, 1], -A[1, 0])
    assert np.isclose(transform_scale(M), np.linalg.norm(dst[1] - dst[0]) / np.linalg.norm(src[1] - src[0]))
    with pytest.raises(ValueError):
        similarity_from_points(np.array([[1.0, 1.0], [1.0, 1.0]]), dst)


def test_fit_inverse_and_compose_agree() -> None:
    rng = np.random.default_rng(0)
    M = similarity_from_points(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[5.0, 7.0], [5.0, 9.0]]))
    pts = rng.uniform(0, 100, size=(10, 2))
    assert np.allclose(similarity_fit(pts, transform_points(M, pts)), M)
    assert np.allclose(transform_points(compose(invert_transform(M), M), pts), pts)


def test_warp_puts_a_pixel_where_transform_points_says() -> None:
    a = np.zeros((40, 40, 3), dtype=np.uint8)
    a[10, 25] = 255  # Centre at (25.5, 10.5).
    src = np.array([[25.5, 10.5], [25.5, 30.5]])
    dst = np.array([[16.0, 8.0], [8.0, 8.0]])  # Rotated 90 degrees and shrunk to 0.4.
    M = similarity_from_points(src, dst)
    out = np.asarray(warp_image(Image.fromarray(a), M, (32, 32), fill=(0, 0, 0))).astype(float).sum(axis=2)
    ys, xs = np.mgrid[:32, :32]
    centre = np.array([(out * (xs + 0.5)).sum(), (out * (ys + 0.5)).sum()]) / out.sum()
    assert np.allclose(centre, [16.0, 8.0], atol=0.35), centre


def test_fill_colour_and_coverage() -> None:
    im = Image.new("RGB", (20, 20), (10, 20, 30))
    M = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0]])  # Shift right by 10 px in a 20 x 20 output.
    out = warp_image(im, M, (20, 20), fill=(200, 0, 0))
    assert out.getpixel((2, 10)) == (200, 0, 0)
    assert out.getpixel((15, 10)) == (10, 20, 30)
    assert coverage(M, (20, 20), (20, 20)) == pytest.approx(0.5, abs=0.02)
    far = np.array([[1.0, 0.0, 500.0], [0.0, 1.0, 0.0]])
    assert warp_image(im, far, (8, 8), fill=(1, 2, 3)).getpixel((4, 4)) == (1, 2, 3)


def test_reflect_fill_mirrors_the_edge_and_fades_to_the_median() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)  # Texture: a plain mirror keeps its contrast.
    a[:, :2] = (250, 10, 10)  # A red edge column pair, mirrored just outside the photo.
    M = np.array([[1.0, 0.0, 20.0], [0.0, 1.0, 0.0]])  # 20 px of the output lie left of the photo.
    out = np.asarray(warp_image(Image.fromarray(a), M, (60, 40), fill="reflect")).astype(int)
    # FFHQ's recipe softens a strip of the photo next to padded edges (a third of the padding);
    # beyond it the output is the photo.
    assert np.array_equal(out[4:-4, 32:-4], a[4:-4, 12:-4].astype(int))
    assert out[5:-5, 19, 0].mean() > 150 and out[5:-5, 19, 2].mean() < 100  # The mirrored red edge.
    assert out[:, 0].std(axis=0).max() < 8 < a.std()  # Far out: blurred and faded to one colour.


def test_downscaling_is_antialiased() -> None:
    ys, xs = np.mgrid[:256, :256]
    rings = (127.5 + 127.5 * np.cos(0.01 * ((xs - 128.0) ** 2 + (ys - 128.0) ** 2))).astype(np.uint8)
    # A zone plate: 0.0032 r cycles/px at radius r. Shrunk 4x, the rings at r = 108..148 (0.34-0.47
    # cycles/px) are far above the new Nyquist limit (0.125) and must blur to grey, where a plain
    # resampler folds them into false rings (moire).
    M = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    out = np.asarray(warp_image(Image.fromarray(np.stack([rings] * 3, -1)), M, (64, 64))).astype(float)[..., 0]
    r = np.hypot(np.mgrid[:64, :64][1] - 31.5, np.mgrid[:64, :64][0] - 31.5)
    band = (r > 27) & (r < 37)
    assert out[band].std() < 12, out[band].std()
