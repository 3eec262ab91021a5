"""2-D similarity transforms and the one image warp that pose normalization and face alignment share.

A transform is a float64 matrix M [2, 3] that maps source pixel coordinates to output pixel
coordinates: [x', y'] = M[:, :2] @ [x, y] + M[:, 2], in continuous coordinates (pixel centres at
+0.5, see tryon.vision.io). `warp_image` renders the output by sampling the source at M^-1 of each
output pixel centre, pre-shrinking the source first when M scales down (so there is no aliasing).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

RGB = tuple[int, int, int]


def similarity_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity transform (rotation, uniform scale, translation) that maps src[0] -> dst[0] and
    src[1] -> dst[1] exactly.

    src, dst: [2, 2] float (two points, x y each). The two src points must differ.
    Returns M [2, 3] float64.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    assert src.shape == (2, 2) and dst.shape == (2, 2), (src.shape, dst.shape)
    s0, s1 = complex(*src[0]), complex(*src[1])
    d0, d1 = complex(*dst[0]), complex(*dst[1])
    if abs(s1 - s0) < 1e-9:
        raise ValueError("similarity_from_points: the two source points coincide")
    a = (d1 - d0) / (s1 - s0)  # Rotation and scale as one complex number.
    b = d0 - a * s0
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping points src [N, 2] onto dst [N, 2] (N >= 2)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    assert src.ndim == 2 and src.shape[1] == 2 and src.shape == dst.shape and len(src) >= 2, (src.shape, dst.shape)
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    ms, md = zs.mean(), zd.mean()
    denom = np.sum(np.abs(zs - ms) ** 2)
    if denom < 1e-12:
        raise ValueError("similarity_fit: the source points coincide")
    a = np.sum(np.conj(zs - ms) * (zd - md)) / denom
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def transform_points(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply M [2, 3] to points [..., 2] -> [..., 2]."""
    points = np.asarray(points, dtype=np.float64)
    return points @ M[:, :2].T + M[:, 2]


def invert_transform(M: np.ndarray) -> np.ndarray:
    """Inverse of an invertible affine M [2, 3] -> [2, 3]."""
    A = M[:, :2]
    Ainv = np.linalg.inv(A)
    return np.concatenate([Ainv, -Ainv @ M[:, 2:3]], axis=1)


def compose(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The transform that applies `before`, then `after` (both [2, 3])."""
    A = after[:, :2] @ before[:, :2]
    t = after[:, :2] @ before[:, 2] + after[:, 2]
    return np.concatenate([A, t[:, None]], axis=1)


def transform_scale(M: np.ndarray) -> float:
    """Linear scale factor of M (sqrt |det|): output px per source px."""
    return float(np.sqrt(abs(np.linalg.det(M[:, :2]))))


def coverage(M: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int], *, grid: int = 64) -> float:
    """Fraction of the output (dst_size = (W, H)) whose source point lies inside the source image
    (src_size = (W, H)), estimated on a grid x grid lattice of output points."""
    W, H = dst_size
    xs = (np.arange(grid) + 0.5) * (W / grid)
    ys = (np.arange(grid) + 0.5) * (H / grid)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    src = transform_points(invert_transform(M), pts)
    inside = (src[:, 0] >= 0) & (src[:, 0] <= src_size[0]) & (src[:, 1] >= 0) & (src[:, 1] <= src_size[1])
    return float(inside.mean())


def warp_image(
    image: Image.Image,
    M: np.ndarray,
    size: tuple[int, int],
    *,
    fill: RGB | str = (255, 255, 255),
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Render `image` through the transform M [2, 3] (source px -> output px) into an RGB image of
    `size` = (W, H).

    fill: what the output shows where M^-1 falls outside the source: an RGB colour, or "reflect"
        for FFHQ-style padding (the photo mirrored at its edges, blurred and faded to its median
        colour with the distance from the edge, so a face cut by the frame still looks natural).
    resample: the interpolation (bicubic by default). When M shrinks the image, the source is first
        resized with a Lanczos filter to about the output scale, so nothing aliases.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    M = np.asarray(M, dtype=np.float64)
    assert M.shape == (2, 3), M.shape
    W, H = size
    if isinstance(fill, str) and fill != "reflect":
        raise ValueError(f"fill must be an RGB tuple or 'reflect', got {fill!r}")
    fill_rgb: RGB = (0, 0, 0) if isinstance(fill, str) else (int(fill[0]), int(fill[1]), int(fill[2]))
    scale = transform_scale(M)
    # Work on the part of the source the output needs (a large photo is never resized whole).
    src = transform_points(invert_transform(M), np.array([[0, 0], [W, 0], [0, H], [W, H]], dtype=np.float64))
    margin = 4 + int(np.ceil(3.0 / max(scale, 1e-6)))  # The filters' support, in source px.
    x0 = max(0, int(np.floor(src[:, 0].min())) - margin)
    y0 = max(0, int(np.floor(src[:, 1].min())) - margin)
    x1 = min(image.width, int(np.ceil(src[:, 0].max())) + margin)
    y1 = min(image.height, int(np.ceil(src[:, 1].max())) + margin)
    if x1 <= x0 or y1 <= y0:  # The output lies wholly outside the photo.
        if fill == "reflect":
            x0, y0, x1, y1 = 0, 0, image.width, image.height
        else:
            return Image.new("RGB", (W, H), fill_rgb)
    if (x0, y0, x1, y1) != (0, 0, image.width, image.height):
        image = image.crop((x0, y0, x1, y1))
        M = compose(M, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))
    if fill == "reflect":
        image, M = _reflect_pad(image, M, size)
    if scale < 0.8:  # Shrink with a proper low-pass filter first; the warp then resamples near 1:1.
        new_w = max(1, round(image.width * scale))
        new_h = max(1, round(image.height * scale))
        kx, ky = new_w / image.width, new_h / image.height
        image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
        M = compose(M, np.array([[1 / kx, 0, 0], [0, 1 / ky, 0]]))
    inv = invert_transform(M)
    coeffs = (inv[0, 0], inv[0, 1], inv[0, 2], inv[1, 0], inv[1, 1], inv[1, 2])
    return image.transform((W, H), Image.Transform.AFFINE, coeffs, resample=resample, fillcolor=fill_rgb)


def _reflect_pad(image: Image.Image, M: np.ndarray, size: tuple[int, int]) -> tuple[Image.Image, np.ndarray]:
    """Pad the source (FFHQ's recipe) so that the output of M lies inside it; returns the padded
    image and M adjusted to it."""
    W, H = size
    src = transform_points(invert_transform(M), np.array([[0, 0], [W, 0], [0, H], [W, H]], dtype=np.float64))
    w, h = image.size
    need = (
        int(np.ceil(-src[:, 0].min())),
        int(np.ceil(-src[:, 1].min())),
        int(np.ceil(src[:, 0].max() - w)),
        int(np.ceil(src[:, 1].max() - h)),
    )
    if max(need) <= 0:  # Fully inside: nothing to invent.
        return image, M
    quad_size = float(max(np.ptp(src[:, 0]), np.ptp(src[:, 1])))
    border = max(3, round(0.1 * quad_size))
    pad = tuple(max(0, n + border) if n > -border else 0 for n in need)
    a = _pad_reflect(np.asarray(image, dtype=np.float32), pad)  # type: ignore[arg-type]
    hh, ww = a.shape[:2]
    y, x = np.ogrid[:hh, :ww]
    inf = np.float32(np.inf)

    def ramp(dist: np.ndarray, p: int) -> np.ndarray:  # 1 at the outer edge, 0 at the photo's edge, < 0 inside.
        return dist.astype(np.float32) / p if p > 0 else np.full(dist.shape, inf)

    mx = 1.0 - np.minimum(ramp(x, pad[0]), ramp(ww - 1 - x, pad[2]))
    my = 1.0 - np.minimum(ramp(y, pad[1]), ramp(hh - 1 - y, pad[3]))
    mask = np.maximum(mx, my)[..., None]
    blur_radius = max(1.0, quad_size * 0.02)
    blurred = np.asarray(
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur_radius)),
        dtype=np.float32,
    )
    a = a + (blurred - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    median = np.median(a.reshape(-1, 3), axis=0)
    a = a + (median - a) * np.clip(mask, 0.0, 1.0)
    padded = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    shifted = compose(M, np.array([[1.0, 0.0, -pad[0]], [0.0, 1.0, -pad[1]]]))
    return padded, shifted


def _pad_reflect(a: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = pad
    while left or top or right or bottom:
        h, w = a.shape[:2]
        step = (min(left, w - 1), min(top, h - 1), min(right, w - 1), min(bottom, h - 1))
        if max(step) == 0:  # A 1-pixel image: reflection is undefined, repeat the edge.
            return np.pad(a, ((top, bottom), (left, right), (0, 0)), mode="edge")
        a = np.pad(a, ((step[1], step[3]), (step[0], step[2]), (0, 0)), mode="reflect")
        left, top, right, bottom = left - step[0], top - step[1], right - step[2], bottom - step[3]
    return a
