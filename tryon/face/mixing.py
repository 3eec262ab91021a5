"""Mixing two faces: style mixing by layer group, and latent composition of a region.

    mixed = mix_styles(latent_a, latent_b, groups=("fine",))      # A with B's colours
    result = compose_faces(models, latent_a, latent_b, "eyes")     # A's eyes in B's face

`mix_styles` swaps whole layer groups of W+ (coarse 4²–8²: pose and face shape; middle 16²–32²:
features, expression, hair style; fine 64²: colours, micro-structure); see
`tryon.face.directions.layer_groups`.

`compose_faces` is a masked projection (latent composition, after Chai et al. 2021): the target is a
collage, face A inside a soft region mask (eyes, mouth, nose, hair on the aligned 64² layout) and
face B outside it; a W+ latent is optimised so that its rendering matches A inside the mask and B
outside (pixel terms weighted by the mask, each side averaged over its own area, so a small region
counts as much as the rest) and the collage as a whole (the face D's multi-scale features and SSIM:
the projection loss of `tryon.face.project`). The generator's prior fills the
seam, so the result is one coherent face rather than a paste.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from tryon.errors import InputError
from tryon.face.directions import LayerSpec, resolve_layers
from tryon.face.latent import FaceLatent
from tryon.face.models import FaceModels, check_latent, synthesize, tensor_to_image
from tryon.nn.layer_groups import LAYER_GROUPS, layer_groups

# Regions on the aligned layout, in fractions of the side (measured on 60 CelebA faces aligned by
# tryon.face.align at 64²: eye centres (0.380, 0.474) and (0.620, 0.474), mouth corners (0.400,
# 0.731) and (0.600, 0.731), nose tip (0.496, 0.644), face oval x 0.24–0.77, y 0.27–0.92).
# Each: a list of ellipses (cx, cy, rx, ry) united; "hair" is the complement of the face oval above
# the jaw line.
REGIONS: dict[str, list[tuple[float, float, float, float]]] = {
    "eyes": [(0.380, 0.465, 0.110, 0.075), (0.620, 0.465, 0.110, 0.075)],
    "mouth": [(0.500, 0.735, 0.150, 0.075)],
    "nose": [(0.497, 0.585, 0.075, 0.100)],
    "hair": [],
}
_FACE_OVAL = (0.503, 0.60, 0.275, 0.33)
_HAIR_BOTTOM = 0.78                     # Below this the complement is neck and shoulders, not hair.
Progress = Callable[[float, str], None]


def mix_styles(
    latent_a: FaceLatent,
    latent_b: FaceLatent,
    groups: str | Sequence[str] | tuple[int, int] = ("fine",),
) -> FaceLatent:
    """A's latent with the ws of `groups` taken from B (noise and tuning stay A's).

    groups: a group name ("coarse" | "middle" | "fine"), several, "all", or a (start, stop) ws range.
    """
    if (latent_a.num_ws, latent_a.w_dim) != (latent_b.num_ws, latent_b.w_dim):
        raise InputError(
            f"cannot mix latents of shapes [{latent_a.num_ws}, {latent_a.w_dim}] and "
            f"[{latent_b.num_ws}, {latent_b.w_dim}]"
        )
    num_ws = latent_a.num_ws
    specs: list[LayerSpec]
    if isinstance(groups, tuple) and len(groups) == 2 and all(isinstance(g, int) for g in groups):
        specs = [groups]                                # type: ignore[list-item]
    elif isinstance(groups, str):
        specs = [groups]
    else:
        specs = [g for g in groups if isinstance(g, str)]
        if not specs:
            raise InputError(f"name at least one layer group to mix: {', '.join(LAYER_GROUPS)}")
    ws = latent_a.ws.copy()
    names = []
    for spec in specs:
        start, stop = resolve_layers(spec, num_ws)
        ws[start:stop] = latent_b.ws[start:stop]
        names.append(spec if isinstance(spec, str) else f"ws {start}..{stop - 1}")
    meta = {**latent_a.meta, "mixed": {"groups": names, "from": latent_b.meta.get("source", "latent_b")}}
    return latent_a.replace(ws=ws, meta=meta)


def region_mask(region: str, resolution: int, feather: float | None = None) -> torch.Tensor:
    """Soft mask [1, 1, res, res] in [0, 1] of a region of an aligned face (REGIONS), feathered by a
    Gaussian of `feather` px (default res/40)."""
    if region not in REGIONS:
        raise InputError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
    res = int(resolution)
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res
    y, x = torch.meshgrid(coords, coords, indexing="ij")

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> torch.Tensor:
        return (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1).float()

    if region == "hair":
        mask = (1 - ellipse(*_FACE_OVAL)) * (y < _HAIR_BOTTOM).float()
    else:
        mask = torch.zeros([res, res])
        for e in REGIONS[region]:
            mask = torch.maximum(mask, ellipse(*e))
    sigma = feather if feather is not None else res / 40
    if sigma > 0:
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        m = mask[None, None]
        m = torch.nn.functional.conv2d(torch.nn.functional.pad(m, (radius, radius, 0, 0), mode="replicate"),
                                       k.view(1, 1, 1, -1))
        m = torch.nn.functional.conv2d(torch.nn.functional.pad(m, (0, 0, radius, radius), mode="replicate"),
                                       k.view(1, 1, -1, 1))
        return m.clamp(0, 1)
    return mask[None, None]


@dataclasses.dataclass
class CompositionResult:
    latent: FaceLatent              # The composed face (W+; B's noise).
    image: Image.Image              # Its rendering, RGB res × res.
    collage: Image.Image            # The target: A inside the mask, B outside.
    mask: np.ndarray                # float32 [res, res] in [0, 1].
    metrics: dict[str, float]       # psnr_inside (vs A), psnr_outside (vs B), seconds, steps.


def compose_faces(
    models: FaceModels,
    latent_a: FaceLatent,
    latent_b: FaceLatent,
    region: str,
    steps: int = 100,
    *,
    lr: float = 0.03,
    feature_weight: float = 1.0,
    pixel_weight: float = 1.0,
    ssim_weight: float = 0.5,
    progress: Progress | None = None,
) -> CompositionResult:
    """`region` ("eyes", "mouth", "nose", "hair") of face A in face B, by masked projection.

    Starts from B's latent with the middle and fine layers of A blended in proportion to the mask's
    area, and optimises W+ (Adam, NVlabs projector's learning-rate ramp) for `steps` steps; B's noise
    is kept. Pivotal-tuning deltas of either latent are not used (the plain G renders the result).
    """
    from tryon.face.project import feature_distance, lr_schedule, psnr, ssim

    check_latent(models, latent_a)
    check_latent(models, latent_b)
    if not 0 <= int(steps) <= 2000:
        raise InputError(f"steps must be between 0 and 2000, got {steps}")
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    device = models.device
    mask = region_mask(region, models.resolution).to(device)
    noise_b = None if latent_b.noise is None else [torch.from_numpy(n).to(device) for n in latent_b.noise]
    noise_a = None if latent_a.noise is None else [torch.from_numpy(n).to(device) for n in latent_a.noise]
    ws_a = torch.from_numpy(latent_a.ws).to(device)[None]
    ws_b = torch.from_numpy(latent_b.ws).to(device)[None]
    with torch.no_grad():
        img_a = synthesize(models, ws_a, noise_a)
        img_b = synthesize(models, ws_b, noise_b)
        collage = mask * img_a + (1 - mask) * img_b
        collage_feats = models.D.features(collage)
    area = float(mask.mean())
    inside = (mask.sum() * 3).clamp_min(1.0)
    outside = ((1 - mask).sum() * 3).clamp_min(1.0)
    start = ws_b.clone()
    fine_from = layer_groups(models.num_ws)["middle"][0]
    start[:, fine_from:] = (1 - area) * ws_b[:, fine_from:] + area * ws_a[:, fine_from:]
    w_opt = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt], lr=lr, betas=(0.9, 0.999))
    for step in range(int(steps)):
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule(step / steps, lr, 0.05, 0.25)
        img = synthesize(models, w_opt, noise_b)
        # Each side averaged over its own area, so that a small region (eyes) weighs as much as the rest.
        pixel = ((mask * (img - img_a).square()).sum() / inside
                 + ((1 - mask) * (img - img_b).square()).sum() / outside)
        loss = (feature_weight * feature_distance(models.D.features(img), collage_feats).mean()
                + pixel_weight * pixel + ssim_weight * (1 - ssim(img, collage).mean()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 10 == 9 or step == steps - 1:
            report((step + 1) / steps, f"composing {step + 1}/{steps}")
    with torch.no_grad():
        ws = w_opt.detach()
        img = synthesize(models, ws, noise_b)
        metrics = {
            "psnr_inside": round(_masked_psnr(img, img_a, mask), 3),
            "psnr_outside": round(_masked_psnr(img, img_b, 1 - mask), 3),
            "psnr_collage": round(psnr(img, collage), 3),
            "mask_area": round(area, 4),
            "steps": int(steps),
            "seconds": round(time.perf_counter() - t0, 3),
        }
    latent = FaceLatent(
        ws=ws[0].cpu().numpy(),
        noise=latent_b.noise,
        meta={"generator_sha256": models.generator_sha256, "method": "composition", "region": region,
              "steps": int(steps)},
    )
    return CompositionResult(latent=latent, image=tensor_to_image(img), collage=tensor_to_image(collage),
                             mask=mask[0, 0].cpu().numpy(), metrics=metrics)


def _masked_psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> float:
    """PSNR (dB, 8-bit scale) of a vs b with per-pixel weights [1, 1, H, W]."""
    mse = float((weight * (a - b).square()).sum() / (weight.sum() * a.shape[1]).clamp_min(1e-8))
    mse_8bit = mse * (127.5**2)
    return 10 * math.log10(255**2 / max(mse_8bit, 1e-10))
