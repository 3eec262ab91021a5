"""tryon.imaging: uint8 conversion and grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tryon.imaging import make_grid, save_image, to_uint8


def test_to_uint8_matches_nvlabs_rounding() -> None:
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]).reshape(1, 1, 2, 3).repeat(1, 3, 1, 1)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3, 3)
    assert out[0, :, :, 0].ravel().tolist() == [0, 0, 128, 191, 255, 255]
    assert to_uint8(x[0]).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="channels"):
        to_uint8(torch.zeros(1, 2, 4, 4))


def test_make_grid_layout() -> None:
    images = np.stack([np.full((2, 3, 3), i + 1, dtype=np.uint8) for i in range(5)])
    grid = make_grid(images, cols=2)
    assert grid.shape == (3 * 2, 2 * 3, 3)
    assert grid[0, 0, 0] == 1 and grid[0, 3, 0] == 2 and grid[2, 0, 0] == 3 and grid[4, 0, 0] == 5
    assert not grid[4:, 3:].any()
    assert make_grid(images).shape == (2 * 2, 3 * 3, 3)  # ceil(sqrt(5)) = 3 columns.
    assert make_grid(images[:2], cols=10).shape == (2, 6, 3)


def test_save_image_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    img = np.random.RandomState(0).randint(0, 256, (4, 5, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), img)
    gray = img[:, :, :1]
    save_image(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")), gray[:, :, 0])
