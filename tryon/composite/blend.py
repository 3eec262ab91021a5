"""Steps 5-7 of `composite_face`: how the warped face is mixed in.

The mask (the face oval, shrunk and feathered), the colour transfer in CIE Lab, and the blend
(Laplacian pyramid, Poisson, alpha or a hard paste); plus `seam_metrics`, which measures how visible
the paste's outline is. Images are float32 RGB in [0, 1], [H, W, 3], unless said otherwise.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Blend = Literal["laplacian", "poisson", "alpha", "paste"]
BLEND_MODES: tuple[str, ...] = ("laplacian", "poisson", "alpha", "paste")


def to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2LAB))


def _from_lab(lab: np.ndarray) -> np.ndarray:
    import cv2

    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


def match_colour(
    source: np.ndarray,
    target: np.ndarray,
    region: np.ndarray,
    *,
    strength: float = 1.0,
    max_gain: tuple[float, float, float] = (1.3, 1.25, 1.25),
) -> tuple[np.ndarray, dict[str, float]]:
    """Shift `source`'s Lab mean and std inside `region` to `target`'s there (Reinhard et al. 2001).

    source, target: float32 RGB [H, W, 3] in [0, 1]; region: bool [H, W] (the skin both images share).
    strength: 0 = no change, 1 = full transfer. max_gain: per L, a, b channel, the std ratio is
    clamped to [1/max_gain, max_gain] (eyes, brows and lips in the region inflate the spread; a full
    contrast transfer then blows out highlights and tints the face).
    Returns the recoloured source and the Lab mean distance (delta E, CIE76) before and after.
    """
    if int(region.sum()) < 16:
        return source, {"delta_e_before": float("nan"), "delta_e_after": float("nan")}
    src_lab, tgt_lab = to_lab(source), to_lab(target)
    s, t = src_lab[region], tgt_lab[region]
    s_mean, s_std = s.mean(0), s.std(0) + 1e-3
    t_mean, t_std = t.mean(0), t.std(0) + 1e-3
    g = np.asarray(max_gain, dtype=np.float32)
    gain = np.clip(t_std / s_std, 1.0 / g, g)
    out_lab = (src_lab - s_mean) * (1.0 + strength * (gain - 1.0)) + s_mean + strength * (t_mean - s_mean)
    out = _from_lab(out_lab)
    after = to_lab(out)[region].mean(0)
    return out, {
        "delta_e_before": float(np.linalg.norm(s_mean - t_mean)),
        "delta_e_after": float(np.linalg.norm(after - t_mean)),
    }


def laplacian_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, *, levels: int | None = None) -> np.ndarray:
    """Multi-band blend (Burt & Adelson 1983): each Laplacian band of fg and bg mixed by the mask
    blurred to that band's scale, so low frequencies (lighting) blend over a wide seam and details
    over a narrow one.

    fg, bg: float32 [H, W, 3]; alpha: float32 [H, W] in [0, 1] (1 = fg). Returns float32 [H, W, 3].
    """
    import cv2

    h, w = alpha.shape
    assert fg.shape == bg.shape == (h, w, 3), (fg.shape, bg.shape, alpha.shape)
    if levels is None:
        levels = max(1, min(6, int(np.log2(max(min(h, w), 8) / 8))))
    gf: list[np.ndarray] = [fg.astype(np.float32)]
    gb: list[np.ndarray] = [bg.astype(np.float32)]
    ga: list[np.ndarray] = [alpha.astype(np.float32)]
    for _ in range(levels):
        gf.append(np.asarray(cv2.pyrDown(gf[-1])))
        gb.append(np.asarray(cv2.pyrDown(gb[-1])))
        ga.append(np.asarray(cv2.pyrDown(ga[-1])))
    out: np.ndarray = gf[-1] * ga[-1][..., None] + gb[-1] * (1.0 - ga[-1][..., None])
    for i in range(levels - 1, -1, -1):
        size = (gf[i].shape[1], gf[i].shape[0])
        lf: np.ndarray = gf[i] - np.asarray(cv2.pyrUp(gf[i + 1], dstsize=size))
        lb: np.ndarray = gb[i] - np.asarray(cv2.pyrUp(gb[i + 1], dstsize=size))
        a = ga[i][..., None]
        out = np.asarray(cv2.pyrUp(out, dstsize=size)) + lf * a + lb * (1.0 - a)
    return np.clip(out, 0.0, 1.0)


def _poisson_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Poisson (gradient-domain) cloning of fg into bg inside alpha > 0.5, via OpenCV."""
    import cv2

    mask = (alpha > 0.5).astype(np.uint8) * 255
    mask[:2, :] = mask[-2:, :] = 0  # seamlessClone needs the mask clear of the crop's border.
    mask[:, :2] = mask[:, -2:] = 0
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return bg
    # The clone is placed by the centre of the mask's bounding box; with fg and bg the same size that
    # puts every pixel back where it was.
    center = ((int(xs.min()) + int(xs.max()) + 1) // 2, (int(ys.min()) + int(ys.max()) + 1) // 2)
    src = np.clip(np.rint(fg * 255), 0, 255).astype(np.uint8)
    dst = np.clip(np.rint(bg * 255), 0, 255).astype(np.uint8)
    out = cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)
    return np.asarray(out, dtype=np.float32) / 255.0


def seam_metrics(image: np.ndarray, mask: np.ndarray, *, reference: np.ndarray | None = None) -> dict[str, float]:
    """How visible the paste's outline is, from the gradient energy (mean squared gradient of the
    luminance, uint8 scale) on a thin band along the mask's outline.

    image: uint8 or float RGB [H, W, 3] (the composite); mask: [H, W] blend weight in [0, 1] (or 0..255).
    reference: the model image before compositing (same size): the band's energy there is the
    natural level (hair, jaw, collar edges also live there).
    Returns {"border": E_band, "interior": E_inside, "ratio": border / interior,
    "excess": border / reference border (1 = as smooth as the untouched photo)}.
    """
    import cv2

    m = mask.astype(np.float32)
    if m.max() > 1.0:
        m = m / 255.0
    hard = (m > 0.5).astype(np.uint8)
    if hard.sum() < 16:
        return {"border": float("nan"), "interior": float("nan"), "ratio": float("nan"), "excess": float("nan")}
    r = max(1, round(0.02 * np.sqrt(hard.sum())))  # Band half-width ~2 % of the face size.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = (cv2.dilate(hard, kernel) - cv2.erode(hard, kernel)).astype(bool)
    inner = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (6 * r + 1, 6 * r + 1))).astype(bool)

    def energy(img: np.ndarray) -> np.ndarray:
        g = np.asarray(img, dtype=np.float32)
        if g.max() <= 1.0:
            g = g * 255.0
        lum = g @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        return np.asarray(gx * gx + gy * gy)

    e = energy(image)
    border = float(e[band].mean())
    interior = float(e[inner].mean()) if inner.any() else float("nan")
    out = {"border": border, "interior": interior, "ratio": border / max(interior, 1e-6), "excess": float("nan")}
    if reference is not None:
        out["excess"] = border / max(float(energy(reference)[band].mean()), 1e-6)
    return out


def _polygon_mask(size: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """float32 [H, W] 1 inside the convex hull of polygon [N, 2] px (continuous coordinates)."""
    import cv2

    w, h = size
    mask = np.zeros((h, w), dtype=np.uint8)
    hull = cv2.convexHull(np.round((polygon - 0.5) * 16).astype(np.int32))  # 4 fractional bits.
    cv2.fillConvexPoly(mask, np.asarray(hull), (255,), lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _feather(mask: np.ndarray, *, shrink: float, sigma: float) -> np.ndarray:
    """Shrink a [0, 1] mask by `shrink` px and blur it by a Gaussian of `sigma` px."""
    import cv2

    out = mask
    r = round(shrink)
    if r > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        out = cv2.erode(out, kernel)
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------
# The steps.


def face_mask(
    oval: np.ndarray,
    covered: np.ndarray,
    *,
    clip_oval: np.ndarray | None = None,
    hard_edge: bool = False,
    shrink: float = 0.0,
    feather: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: the hard mask and the blend weight, float32 [h, w] of the crop.

    hard: inside `oval` [N, 2] (crop px), inside `clip_oval` too when given (the warped face's own
    oval), and where the warped face fully `covers` the crop. alpha: hard thresholded (`hard_edge`),
    or shrunk by `shrink` px and blurred by `feather` px.
    """
    ch, cw = covered.shape
    hard = _polygon_mask((cw, ch), oval)
    if clip_oval is not None:
        hard = np.minimum(hard, _polygon_mask((cw, ch), clip_oval))
    hard = np.minimum(hard, (covered > 0.999).astype(np.float32))
    alpha = (hard > 0.5).astype(np.float32) if hard_edge else _feather(hard, shrink=shrink, sigma=feather)
    return hard, alpha


def match_face_colour(
    face: np.ndarray, background: np.ndarray, hard: np.ndarray, *, extent: float, strength: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Step 6: `match_colour` of the warped face to the model inside the inner face (the hard mask
    shrunk by 12 % of the face size `extent`: away from hair and jaw edges), the region both share."""
    skin = _feather(hard, shrink=0.12 * extent, sigma=0) > 0.5
    return match_colour(face, background, skin, strength=strength)


def blend_face(
    model: Image.Image,
    face: np.ndarray,
    background: np.ndarray,
    alpha: np.ndarray,
    box: tuple[int, int, int, int],
    mode: Blend,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 7: blend the face into the crop `box` (x0, y0, x1, y1) of the model image by `mode`.

    Returns the composite (uint8 [H, W, 3]) and the blend weight over the whole image (uint8 [H, W]).
    """
    x0, y0, x1, y1 = box
    if mode == "laplacian":
        out_crop = laplacian_blend(face, background, alpha)
    elif mode == "poisson":
        out_crop = _poisson_blend(face, background, alpha)
    else:
        out_crop = face * alpha[..., None] + background * (1.0 - alpha[..., None])
    W, H = model.size
    out_arr = np.asarray(model, dtype=np.uint8).copy()
    out_arr[y0:y1, x0:x1] = np.clip(np.rint(out_crop * 255.0), 0, 255).astype(np.uint8)
    mask_full = np.zeros((H, W), dtype=np.uint8)
    mask_full[y0:y1, x0:x1] = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    return out_arr, mask_full
