"""Garment transfer: a catalog garment photo -> "this garment, worn by a model".

    from tryon.fashion import FashionPipeline, garment_transfer
    pipe = FashionPipeline.from_checkpoint(None)
    result = garment_transfer(pipe, Image.open("shirt.jpg"), gender="Men", steps=100)
    result.on_model.save("worn.png"); result.metrics   # colour_distance, category_agreement, ...

Steps:

1. Frame the photo like the training flats (`tryon.vision.framing`: background colour from the
   border, the garment's bounding box centred with a 6 % margin, filled with that colour).
2. Estimate its labels with the domain classifier (tryon/assets/fashion_features): category and
   colour (and gender unless given); the view is "flat".
3. Project it into the fashion G under those labels: W+ optimisation from the labels' mean latent,
   with a pixel loss and a perceptual loss on the fashion D's multi-scale features (`D.features`:
   no pretrained VGG/LPIPS exists offline), plus a small pull towards the mean latent.
4. Map a seed under the same category / colour / gender with view "on_model", and replace its
   middle and fine ws (shape details, colour, texture) by the projected garment's: the model keeps
   its silhouette and pose (coarse ws), the garment brings its look.
5. Colour matching (`match_colours`, on by default): at 64 px the projection keeps the garment's
   colour poorly (a red/white/navy tee came back grey-black), so the garment of the result takes the
   photo garment's own colours (CIELAB), with a feathered edge. Where: `garment_mask`, a colour /
   position model of the generated on-model frame (the person's pixels in the category's band, less
   the skin colour read on the face: sleeves and shoulders included, arms and neck not), or the
   category's fixed box (`colour_region="box"`, `WORN_REGIONS`). How: by place (`layout_colours`,
   the default: the result garment's bounding box mapped onto the photo garment's, so a two-tone
   garment keeps its top / bottom and left / right arrangement; the result's folds shade it), or by
   the rank of a smoothed lightness (`match_layout=False`: the colours in their proportions, as blobs).

Metrics (all on the result's `garment_mask`): colour fidelity = CIELAB ΔE76 between the mean colour
of the garment's pixels in the photo and the mean colour of the result's garment (the same for the
model before transfer as a baseline, and for the result before colour matching); the dominant colour
name of both (`dominant_colour`) and whether it was kept; `layout_error` (the colours of a 4 x 4 grid
over both garments' boxes); category agreement = whether the classifier sees the estimated category
in the result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from tryon.errors import CheckpointError, InputError
from tryon.fashion.outfits import FashionPipeline, OutfitSpec, check_seed, check_truncation
from tryon.vision.framing import FLAT_MARGIN, box_frame_transform, estimate_background, foreground_box
from tryon.vision.warp import warp_image

Progress = Callable[[float, str], None]

DEFAULT_STEPS = 100
MAX_STEPS = 2000
TRANSFER_LAYERS = ("middle", "fine")    # Layer groups the garment brings to the model.
FOREGROUND_THRESHOLD = 24               # Levels from the background colour that make a pixel "garment".

# The worn region of an on-model image, as (x0, y0, x1, y1) fractions of its side, by category.
# On-model training images put the shoulders at y 0.32 and the hips at y 0.82 (datasets/fashion.py).
WORN_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "tops": (0.32, 0.38, 0.68, 0.80),
    "outerwear": (0.28, 0.36, 0.72, 0.84),
    "innerwear": (0.34, 0.40, 0.66, 0.82),
    "bottoms": (0.30, 0.80, 0.70, 1.00),
}
DEFAULT_WORN_REGION = (0.30, 0.36, 0.70, 0.86)


@dataclasses.dataclass
class FramedGarment:
    """A garment photo framed like the training flats."""

    image: Image.Image                  # RGB, res x res.
    mask: np.ndarray                    # bool [res, res]: the garment's pixels.
    background: tuple[int, int, int]    # The photo's background colour (and the fill).
    box: tuple[int, int, int, int]      # The garment's bounding box in the photo, px.


@dataclasses.dataclass
class TransferResult:
    """What `garment_transfer` makes, with how and how well."""

    framed: Image.Image                 # The photo framed like a training flat, res x res.
    flat: Image.Image                   # Its projection: the G's flat garment, res x res.
    on_model: Image.Image               # The garment worn by a model, res x res.
    base_on_model: Image.Image          # The model before the transfer (same seed and labels).
    labels: dict[str, str]              # Labels of the flat projection (estimated, view = flat).
    on_model_labels: dict[str, str]     # Labels of the model latent (view = on_model).
    estimate: dict[str, dict[str, Any]]  # Classifier on the photo: {column: {"value", "confidence"}}.
    seed: int                           # Seed of the model latent.
    truncation: float                   # Truncation of the model latent.
    flat_ws: np.ndarray                 # float32 [num_ws, w_dim].
    on_model_ws: np.ndarray             # float32 [num_ws, w_dim].
    metrics: dict[str, Any]
    timings: dict[str, float]


def frame_garment_photo(photo: Image.Image, res: int) -> FramedGarment:
    """Centre the garment of a product photo in a res x res square as the dataset frames flats.
    InputError when the photo shows no garment (one flat colour)."""
    a = np.ascontiguousarray(np.asarray(photo.convert("RGB")))
    if min(a.shape[:2]) < 8:
        raise InputError(f"the garment photo is too small ({a.shape[1]}x{a.shape[0]} px)")
    background, _ = estimate_background(a)
    box = foreground_box(a, background, threshold=FOREGROUND_THRESHOLD)
    if box is None or max(box[2] - box[0], box[3] - box[1]) < 4:
        raise InputError("no garment found in the photo: it is one flat colour; send a product photo of the garment")
    M = box_frame_transform(box, res, FLAT_MARGIN)
    framed = warp_image(photo.convert("RGB"), M, (res, res), fill=background)
    f = np.asarray(framed).astype(np.int16)
    mask = np.abs(f - np.array(background, dtype=np.int16)).max(axis=2) > FOREGROUND_THRESHOLD
    if not mask.any():
        mask = np.ones(mask.shape, dtype=bool)
    return FramedGarment(image=framed, mask=mask, background=background, box=box)


def to_tensor(image: Image.Image | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB image -> float [1, 3, H, W] in [-1, 1]."""
    a = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    return torch.from_numpy(a / 127.5 - 1).permute(2, 0, 1)[None].to(device)


@torch.no_grad()
def classify(pipe: FashionPipeline, image: Image.Image) -> dict[str, dict[str, Any]]:
    """The domain classifier's reading of an image: {column: {"value", "confidence"}}."""
    net = pipe.classifier()
    logits = net(to_tensor(image, pipe.device))[1]
    out: dict[str, dict[str, Any]] = {}
    for head, part in zip(net.heads, net.split_logits(logits), strict=True):
        if head.binary:
            p = float(torch.sigmoid(part[0, 0]))
            out[head.name] = {"value": head.class_name(int(p > 0.5)), "confidence": max(p, 1 - p)}
        else:
            probs = torch.softmax(part[0], dim=0)
            k = int(probs.argmax())
            out[head.name] = {"value": head.values[k], "confidence": float(probs[k])}
    return out


def _schema_labels(pipe: FashionPipeline, wanted: Mapping[str, str]) -> dict[str, str]:
    """Keep the {column: value} entries the generator's schema knows (by column and value name)."""
    if pipe.schema is None:
        return {}
    out = {}
    for name, value in wanted.items():
        try:
            col = pipe.schema.column(name)
            out[col.name] = col.values[pipe.schema.index(col.name, value) - col.offset]
        except InputError:
            continue
    return out


def project_garment(
    pipe: FashionPipeline,
    target: torch.Tensor,                   # float [1, 3, res, res] in [-1, 1].
    labels: Mapping[str, str],              # Labels of the projection (view = flat).
    *,
    steps: int = DEFAULT_STEPS,             # Optimisation steps.
    lr: float = 0.05,                       # Peak Adam learning rate (ramped up and down).
    perceptual_weight: float = 1.0,         # Weight of the D-feature loss (0 = pixels only).
    mean_weight: float = 0.01,              # Pull towards the labels' mean latent (keeps ws plausible).
    progress: Progress | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, dict[str, Any]]:
    """W+ projection of `target` into the fashion G -> (ws [num_ws, w_dim], final losses)."""
    device = pipe.device
    target = target.to(device)
    D = None
    if perceptual_weight > 0:
        try:
            D = pipe.discriminator()
        except CheckpointError:
            D = None  # No D shipped: pixels only (recorded in the losses).
    w_mean = pipe.mean_ws(labels).detach()
    ws = w_mean.clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.999))
    target_feats = [f.detach() for f in D.features(target)] if D is not None else []
    feat_scales = [float(f.pow(2).mean().clamp_min(1e-8)) for f in target_feats]
    lo, hi = progress_span
    losses: dict[str, Any] = {}
    for step in range(steps):
        t = step / max(steps - 1, 1)
        ramp = min(1.0, (1.0 - t) / 0.25) * min(1.0, t / 0.05) if steps > 1 else 1.0
        for group in opt.param_groups:
            group["lr"] = lr * (0.5 - 0.5 * math.cos(math.pi * ramp))
        img = pipe.synthesize(ws)
        pixel = F.mse_loss(img, target)
        perceptual = torch.zeros((), device=device)
        if D is not None:
            feats = D.features(img)
            perceptual = sum(
                (F.mse_loss(f, tf) / s for f, tf, s in zip(feats, target_feats, feat_scales, strict=True)),
                start=torch.zeros((), device=device),
            ) / len(feats)
        reg = (ws - w_mean[None]).pow(2).mean()
        loss = pixel + perceptual_weight * perceptual + mean_weight * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses = {"pixel_mse": pixel.item(), "perceptual": perceptual.item(), "mean_reg": reg.item()}
        if progress is not None and (step % 10 == 0 or step == steps - 1):
            progress(lo + (hi - lo) * (step + 1) / steps, f"projecting the garment ({step + 1}/{steps})")
    losses["perceptual_loss"] = "d_features" if D is not None else "none"
    return ws.detach()[0], losses


def garment_transfer(
    pipe: FashionPipeline,
    photo: Image.Image,                     # The garment's product photo (upright RGB).
    *,
    gender: str | None = None,              # The model's gender; None = the classifier's reading.
    category: str | None = None,            # Override the estimated category (schema value).
    colour: str | None = None,              # Override the estimated colour (schema value).
    seed: int = 0,                          # Seed of the model who wears it.
    truncation: float = 0.7,                # Truncation of the model latent.
    steps: int = DEFAULT_STEPS,             # Projection steps.
    layers: Sequence[str] = TRANSFER_LAYERS,  # Layer groups taken from the garment.
    match_colour: bool = True,              # Give the worn garment the photo garment's colours (Lab).
    colour_region: str = "garment",         # Where: "garment" (garment_mask) or "box" (worn_region).
    match_layout: bool = True,              # Colours by place in the garment (else by lightness rank).
    progress: Progress | None = None,       # progress(fraction 0..1, message).
) -> TransferResult:
    """Project a garment photo into the fashion G and put it on a model. InputError for bad input."""
    check_seed(seed)
    check_truncation(truncation)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be an integer in 1..{MAX_STEPS}, got {steps!r}")
    if colour_region not in REGIONS:
        raise InputError(f"colour_region must be one of {', '.join(REGIONS)}, got {colour_region!r}")
    layer_idx = sorted({i for group in layers for i in pipe.layer_indices(group)})

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(min(max(fraction, 0.0), 1.0), message)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(0.0, "framing the photo")
    framed = frame_garment_photo(photo, pipe.resolution)
    t1 = time.perf_counter()
    timings["frame_s"] = t1 - t0

    report(0.02, "reading the garment's labels")
    estimate = classify(pipe, framed.image)
    wanted = {name: str(e["value"]) for name, e in estimate.items()}
    fields = pipe.field_columns()
    overrides = {"category": category, "colour": colour, "gender": gender}
    for field, value in overrides.items():
        if value is not None:
            wanted[pipe.column_for(field)] = value
    if "view" in fields:
        wanted[fields["view"]] = "flat"
    flat_labels = _schema_labels(pipe, wanted)
    for field, value in overrides.items():  # A given value the schema lacks is an error, not a silent drop.
        if value is not None:
            pipe.resolve_labels(labels={pipe.column_for(field): value})
    if pipe.conditional and not flat_labels:
        raise InputError("the garment's labels could not be matched to the fashion model's labels")
    model_labels = dict(flat_labels)
    if "view" in fields:
        model_labels[fields["view"]] = "on_model"
    t2 = time.perf_counter()
    timings["classify_s"] = t2 - t1

    target = to_tensor(framed.image, pipe.device)
    flat_ws, losses = project_garment(
        pipe, target, flat_labels, steps=steps, progress=report, progress_span=(0.05, 0.9)
    )
    t3 = time.perf_counter()
    timings["project_s"] = t3 - t2

    report(0.92, "dressing the model")
    base_ws = pipe.map_specs([OutfitSpec(labels=model_labels, seed=seed, truncation=truncation)])[0]
    worn_ws = base_ws.clone()
    worn_ws[layer_idx] = flat_ws.to(worn_ws.device)[layer_idx]
    flat_img, worn_img, base_img = pipe.render(torch.stack([flat_ws.to(worn_ws.device), worn_ws, base_ws]))
    category_col = fields.get("category")
    category_value = flat_labels.get(category_col) if category_col else None
    unmatched_img = worn_img
    if match_colour:
        region = REGIONS[colour_region](worn_img, category_value)
        worn_img = match_colours(worn_img, region, np.asarray(framed.image), framed.mask, layout=match_layout)
    t4 = time.perf_counter()
    timings["mix_s"] = t4 - t3

    report(0.96, "measuring")
    metrics = transfer_metrics(
        pipe, framed, flat_img, worn_img, base_img, category=category_value, estimate=estimate,
        unmatched=unmatched_img if match_colour else None,
    )
    metrics["projection"] = {
        **losses,
        "psnr_db": psnr(np.asarray(framed.image), flat_img),
        "steps": steps,
    }
    t5 = time.perf_counter()
    timings["metrics_s"] = t5 - t4
    timings["total_s"] = t5 - t0
    report(1.0, "done")
    return TransferResult(
        framed=framed.image,
        flat=Image.fromarray(flat_img),
        on_model=Image.fromarray(worn_img),
        base_on_model=Image.fromarray(base_img),
        labels=flat_labels,
        on_model_labels=model_labels,
        estimate=estimate,
        seed=int(seed),
        truncation=float(truncation),
        flat_ws=flat_ws.cpu().numpy().astype(np.float32),
        on_model_ws=worn_ws.cpu().numpy().astype(np.float32),
        metrics=metrics,
        timings=timings,
    )


# ----------------------------------------------------------------------------------------------------
# Metrics.


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 or [0, 255] float RGB [..., 3] -> CIELAB (D65) [..., 3]."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def mean_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour [3] of the pixels of uint8 [H, W, 3] under bool mask [H, W]."""
    pixels = image[mask] if mask.any() else image.reshape(-1, 3)
    return srgb_to_lab(pixels).mean(axis=0)


def worn_region(image: np.ndarray, category: str | None) -> np.ndarray:
    """bool [H, W]: where the garment of `category` is worn on an on-model image (the category's
    box, less the pixels of the image's background colour)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = WORN_REGIONS.get(category or "", DEFAULT_WORN_REGION)
    box = np.zeros([h, w], dtype=bool)
    box[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 1)] = True
    background, _ = estimate_background(image)
    fg = np.abs(image.astype(np.int16) - np.array(background, dtype=np.int16)).max(axis=2) > FOREGROUND_THRESHOLD
    region = box & fg
    return region if region.sum() >= 0.1 * box.sum() else box


# Where a garment of a category can be worn on an on-model image, as (y0, y1) fractions of its side:
# tops from the neck to the hips, bottoms from the hips down (shoulders at y 0.32, hips at y 0.82).
GARMENT_BANDS: dict[str, tuple[float, float]] = {
    "tops": (0.28, 0.84),
    "outerwear": (0.28, 0.88),
    "innerwear": (0.28, 0.84),
    "bottoms": (0.78, 1.00),
}
DEFAULT_GARMENT_BAND = (0.28, 0.88)
FACE_BOX = (0.42, 0.12, 0.58, 0.26)     # The face of an on-model image, (x0, y0, x1, y1) fractions: its skin colour.
SKIN_DELTA_E = 14.0                     # CIELAB distance from the face's colour that makes a pixel "skin".


def skin_colour(image: np.ndarray) -> np.ndarray | None:
    """The median CIELAB colour [3] of the face of an on-model image (FACE_BOX, less background
    pixels); None when that box holds none."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = FACE_BOX
    face = image[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 1)]
    background, _ = estimate_background(image)
    fg = np.abs(face.astype(np.int16) - np.array(background, dtype=np.int16)).max(axis=2) > FOREGROUND_THRESHOLD
    return np.median(srgb_to_lab(face[fg]), axis=0) if fg.any() else None


def _fill_specks(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] with each pixel that most of its 8 neighbours (5+) are in added: the generator's
    bright or skin-toned specks inside a garment belong to it."""
    p = np.pad(mask, 1).astype(np.int8)
    h, w = mask.shape
    neighbours = sum(p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - mask
    return mask | (neighbours >= 5)


def garment_mask(image: np.ndarray, category: str | None) -> np.ndarray:
    """bool [H, W]: where the garment of `category` is on an on-model image, a colour/position model:
    the person's pixels (not the background colour) in the category's band (`GARMENT_BANDS`: sleeves
    and shoulders included, at any width), less skin (within SKIN_DELTA_E of the face's colour: arms,
    neck, legs), with specks inside it filled. Falls back to `worn_region` when that leaves under a
    tenth of the region."""
    h, w = image.shape[:2]
    y0, y1 = GARMENT_BANDS.get(category or "", DEFAULT_GARMENT_BAND)
    band = np.zeros([h, w], dtype=bool)
    band[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1)] = True
    background, _ = estimate_background(image)
    person = np.abs(image.astype(np.int16) - np.array(background, dtype=np.int16)).max(axis=2) > FOREGROUND_THRESHOLD
    mask = band & person
    skin = skin_colour(image)
    if skin is not None:
        mask &= np.linalg.norm(srgb_to_lab(image) - skin, axis=2) > SKIN_DELTA_E
    mask = _fill_specks(mask) & band
    fallback = worn_region(image, category)
    return mask if mask.sum() >= 0.1 * fallback.sum() else fallback


def layout_colours(
    region: np.ndarray,                     # bool [H, W]: the result's garment pixels.
    photo: np.ndarray,                      # uint8 [h, w, 3]: the framed garment photo.
    mask: np.ndarray,                       # bool [h, w]: the garment's pixels in it.
) -> np.ndarray:
    """CIELAB [N, 3] for the N pixels of `region` (row-major): the photo garment's colour at the same
    place, mapping the region's bounding box onto the photo mask's (so the garment's top / bottom and
    left / right arrangement is kept); each place takes its nearest interior garment pixel (a place
    that falls off the photo garment, e.g. between two straps, the nearest one there is). The photo
    garment is blurred a little first (LAYOUT_BLUR, within its mask: its edges do not take the
    background's colour) so that its texture does not alias."""
    sigma = LAYOUT_BLUR * photo.shape[0]
    weight = _gaussian_blur(mask.astype(np.float64), sigma)[..., None]
    lab = np.stack([_gaussian_blur(c * mask, sigma) for c in np.moveaxis(srgb_to_lab(photo), 2, 0)], 2)
    lab = lab / np.maximum(weight, 1e-6)
    ry, rx = np.nonzero(region)
    py, px = np.nonzero(mask)
    # Colours come from the garment's interior pixels (their 4 neighbours garment too): its edge pixels
    # are blended with the background in the photo.
    p = np.pad(mask, 1)
    interior = mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    iy, ix = np.nonzero(interior) if interior.any() else (py, px)
    u = (rx - rx.min() + 0.5) / (rx.max() - rx.min() + 1)
    v = (ry - ry.min() + 0.5) / (ry.max() - ry.min() + 1)
    sx = px.min() - 0.5 + u * (px.max() - px.min() + 1)
    sy = py.min() - 0.5 + v * (py.max() - py.min() + 1)
    out = np.empty([len(rx), 3])
    for start in range(0, len(rx), 1024):  # Nearest garment pixel of each place, a block at a time.
        d = (sx[start : start + 1024, None] - ix[None]) ** 2 + (sy[start : start + 1024, None] - iy[None]) ** 2
        k = d.argmin(axis=1)
        out[start : start + 1024] = lab[iy[k], ix[k]]
    return out


# The worn regions colour matching can write, by name (garment_transfer's colour_region).
REGIONS: dict[str, Callable[[np.ndarray, str | None], np.ndarray]] = {"garment": garment_mask, "box": worn_region}

LAYOUT_GRID = 4  # Cells per side of `layout_error`'s grid over each garment's bounding box.


def layout_error(worn: np.ndarray, region: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """How far the result's garment is from the photo garment's arrangement of colours: both bounding
    boxes cut into LAYOUT_GRID x LAYOUT_GRID cells, the mean CIELAB ΔE76 between the mean colours of
    the same cell (cells that hold garment pixels in both), weighted by the result's pixels; with no
    cell in common (or an empty mask), the ΔE76 of the two garments' mean colours."""

    def cells(image: np.ndarray, m: np.ndarray) -> dict[tuple[int, int], tuple[np.ndarray, int]]:
        ys, xs = np.nonzero(m)
        lab = srgb_to_lab(image[ys, xs])
        cy = np.minimum((ys - ys.min()) * LAYOUT_GRID // (ys.max() - ys.min() + 1), LAYOUT_GRID - 1)
        cx = np.minimum((xs - xs.min()) * LAYOUT_GRID // (xs.max() - xs.min() + 1), LAYOUT_GRID - 1)
        out = {}
        for key in set(zip(cy.tolist(), cx.tolist(), strict=True)):
            sel = (cy == key[0]) & (cx == key[1])
            out[key] = (lab[sel].mean(axis=0), int(sel.sum()))
        return out

    shared = []
    if region.any() and mask.any():
        a, b = cells(worn, region), cells(photo, mask)
        shared = [k for k in a if k in b]
    if not shared:
        return float(np.linalg.norm(mean_lab(worn, region) - mean_lab(photo, mask)))
    weights = np.array([a[k][1] for k in shared], dtype=np.float64)
    errors = np.array([np.linalg.norm(a[k][0] - b[k][0]) for k in shared])
    return float((errors * weights).sum() / weights.sum())


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) [..., 3] -> uint8 sRGB [..., 3] (out-of-gamut colours clipped); `srgb_to_lab`'s inverse."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * np.array([0.95047, 1.0, 1.08883])
    m = np.array(
        [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]]
    )
    c = np.clip(xyz @ m.T, 0.0, 1.0)
    c = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(c * 255), 0, 255).astype(np.uint8)


# Named colours for "the garment's dominant colour": the shipped schema's colour groups (navy is
# "blue"), each pixel named by its nearest entry in CIELAB.
COLOUR_NAMES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((25, 25, 25),),
    "grey": ((128, 128, 128), (80, 80, 80), (180, 180, 180)),
    "white": ((240, 240, 240),),
    "red": ((190, 30, 35), (130, 25, 35)),
    "pink": ((235, 140, 170),),
    "orange": ((235, 120, 30),),
    "yellow": ((235, 210, 50),),
    "green": ((50, 130, 60), (100, 110, 60)),
    "blue": ((40, 80, 170), (30, 40, 80), (120, 160, 210)),
    "purple": ((110, 50, 130),),
    "brown": ((110, 70, 40),),
    "beige": ((215, 195, 160),),
}
_NAMED = [(name, rgb) for name, rgbs in COLOUR_NAMES.items() for rgb in rgbs]
_NAMED_LAB = srgb_to_lab(np.array([rgb for _, rgb in _NAMED]))


def dominant_colour(image: np.ndarray, mask: np.ndarray) -> str:
    """The colour name (`COLOUR_NAMES`) of the most pixels of uint8 [H, W, 3] under bool mask [H, W]."""
    pixels = image[mask] if mask.any() else image.reshape(-1, 3)
    lab = srgb_to_lab(pixels)
    nearest = np.argmin(((lab[:, None, :] - _NAMED_LAB[None]) ** 2).sum(axis=2), axis=1)
    counts: dict[str, int] = {}
    for k in nearest:
        counts[_NAMED[k][0]] = counts.get(_NAMED[k][0], 0) + 1
    return max(counts, key=lambda name: counts[name])


RANK_BLUR = 0.03  # Of match_colours' lightness ranking, as a fraction of the image side.
LAYOUT_BLUR = 0.012  # Of the photo garment before layout_colours samples it (side fraction): anti-aliasing.
FOLD_BLUR = 0.1   # The broad lightness that match_colours' layout shading is measured against (side fraction).
FOLD_STRENGTH = 0.35 # Share of the result's folds (lightness) kept on the layout's colours.


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """float [H, W] blurred by a Gaussian of `sigma` pixels (separable, edges replicated)."""
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(a.astype(np.float64), r, mode="edge")
    p = np.apply_along_axis(np.convolve, 0, p, k, mode="valid")
    return np.apply_along_axis(np.convolve, 1, p, k, mode="valid")


def match_colours(
    worn: np.ndarray,                       # uint8 [H, W, 3]: the on-model result.
    region: np.ndarray,                     # bool [H, W]: its worn region.
    photo: np.ndarray,                      # uint8 [h, w, 3]: the framed garment photo.
    mask: np.ndarray,                       # bool [h, w]: the garment's pixels in it.
    *,
    strength: float = 1.0,                  # 0 = unchanged, 1 = the photo's colour distribution.
    layout: bool = False,                   # Colours by place (layout_colours), not by lightness rank.
) -> np.ndarray:
    """Give the worn region the colours of the photo's garment: the region's pixels ranked by CIELAB
    lightness each take the photo garment pixel (all three channels) of the same lightness rank, so
    the region shows the garment's own colours in its own proportions while shading and folds keep
    their order; blended in with a feathered edge. With `layout`, each pixel takes the photo garment's
    colour at the same place of the garment (`layout_colours`: a print or a two-tone garment keeps its
    arrangement), its lightness shaded by the result's folds (its lightness less its smoothed lightness).
    -> uint8 [H, W, 3]."""
    if not region.any() or not mask.any() or strength <= 0:
        return worn.copy()
    source = srgb_to_lab(worn[region])
    worn_L = srgb_to_lab(worn)[..., 0]
    smooth_L = _gaussian_blur(worn_L, RANK_BLUR * worn.shape[0])
    if layout:
        picked = layout_colours(region, photo, mask)
        # Folds, not the generator's pixel flicker: the smoothed lightness less a broad average of it.
        folds = smooth_L - _gaussian_blur(worn_L, FOLD_BLUR * worn.shape[0])
        picked[:, 0] = np.clip(picked[:, 0] + FOLD_STRENGTH * folds[region], 0, 100)
    else:
        target = srgb_to_lab(photo[mask])
        target = target[np.argsort(target[:, 0], kind="stable")]
        # Ranked by a smoothed lightness, so that neighbouring pixels take neighbouring colours: blobs of
        # one colour, not a speckle of all of them where the generator's texture flickers.
        ranks = np.argsort(np.argsort(smooth_L[region], kind="stable"), kind="stable")
        picked = target[((ranks + 0.5) * len(target) / len(source)).astype(np.int64).clip(0, len(target) - 1)]
    lab = srgb_to_lab(worn)
    lab[region] = (1 - strength) * source + strength * picked
    matched = lab_to_srgb(lab).astype(np.float64)
    soft = np.asarray(
        Image.fromarray((region * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius=0.6)), np.float64
    )[..., None] / 255.0
    soft = np.maximum(soft, region[..., None])  # Fully matched inside, a soft edge outside.
    return np.clip(np.rint(soft * matched + (1 - soft) * worn), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def transfer_metrics(
    pipe: FashionPipeline,
    framed: FramedGarment,
    flat: np.ndarray,
    worn: np.ndarray,
    base: np.ndarray,
    *,
    category: str | None,
    estimate: Mapping[str, Mapping[str, Any]],
    unmatched: np.ndarray | None = None,    # The result before colour matching, if it was matched.
) -> dict[str, Any]:
    """Colour fidelity (ΔE76 of mean colours, photo garment vs worn region; before and after; the
    dominant colour names of both) and category / colour agreement (the classifier on the result vs
    its reading of the photo)."""
    photo = np.asarray(framed.image)
    photo_lab = mean_lab(photo, framed.mask)
    region = garment_mask(worn, category)
    worn_lab = mean_lab(worn, region)
    base_lab = mean_lab(base, garment_mask(base, category))
    flat_lab = mean_lab(flat, framed.mask)
    reading = classify(pipe, Image.fromarray(worn))
    out: dict[str, Any] = {
        "colour_distance": round(float(np.linalg.norm(photo_lab - worn_lab)), 3),
        "colour_distance_before": round(float(np.linalg.norm(photo_lab - base_lab)), 3),
        "colour_distance_flat": round(float(np.linalg.norm(photo_lab - flat_lab)), 3),
        "photo_lab": [round(float(v), 2) for v in photo_lab],
        "worn_lab": [round(float(v), 2) for v in worn_lab],
        "result_reading": reading,
        "dominant_colour_photo": dominant_colour(photo, framed.mask),
        "dominant_colour_worn": dominant_colour(worn, region),
        "colour_matched": unmatched is not None,
        "layout_error": round(layout_error(worn, region, photo, framed.mask), 3),
        "garment_pixels": int(region.sum()),
    }
    out["dominant_colour_kept"] = out["dominant_colour_photo"] == out["dominant_colour_worn"]
    if unmatched is not None:
        unmatched_region = garment_mask(unmatched, category)
        unmatched_lab = mean_lab(unmatched, unmatched_region)
        out["colour_distance_unmatched"] = round(float(np.linalg.norm(photo_lab - unmatched_lab)), 3)
        out["dominant_colour_unmatched"] = dominant_colour(unmatched, unmatched_region)
        out["layout_error_unmatched"] = round(layout_error(unmatched, unmatched_region, photo, framed.mask), 3)
    for metric, field in (("category_agreement", "category"), ("colour_agreement", "colour")):
        column = pipe.field_columns().get(field)
        if column and column in estimate and column in reading:
            out[metric] = reading[column]["value"] == estimate[column]["value"]
    if category is not None:
        column = pipe.field_columns().get("category")
        out["category"] = category
        if column and column in reading:
            out["category_agreement"] = reading[column]["value"] == category
    return out
