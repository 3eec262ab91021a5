"""Garment variants for designers: seeds, truncation sweep, style mixing, interpolation, colour.

    from tryon.fashion import FashionPipeline, garment_variants
    pipe = FashionPipeline.from_checkpoint(None)
    base = pipe.spec(category="tops", colour="blue", gender="Men", view="flat", seed=3, truncation=0.7)
    other = pipe.spec(category="tops", colour="red", gender="Men", view="flat", seed=9, truncation=0.7)
    mixed = garment_variants(pipe, base, "mix", other=other, layers=["coarse", "fine"])

Modes (each result carries `params` saying how it was made):

- "seeds": the base labels and truncation with other seeds.
- "truncation": the base seed at several truncations (psi 0 = the average garment of the labels).
- "mix": style mixing in W+: the base latent with `other`'s ws at one layer group (coarse = the
  8 px blocks and below: silhouette; middle = 16-32 px; fine = 64 px and up: colour, texture).
- "interpolate": `steps` latents on the straight line from base to other in W+ (ends included).
- "colour": the same z (base seed) under other colour labels: the condition changes, the seed not.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from tryon.errors import InputError
from tryon.fashion.outfits import (
    MAX_SEEDS,
    FashionPipeline,
    OutfitResult,
    OutfitSpec,
    check_seed,
    check_truncation,
)
from tryon.nn.layer_groups import LAYER_GROUPS

VARIANT_MODES = ("seeds", "truncation", "mix", "interpolate", "colour")
MAX_VARIANTS = MAX_SEEDS                # Images per call.
DEFAULT_TRUNCATIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def garment_variants(
    pipe: FashionPipeline,
    base: OutfitSpec,                           # The garment to vary (checked: `pipe.spec(...)`).
    mode: str,                                  # One of VARIANT_MODES.
    *,
    seeds: Sequence[int] | None = None,         # "seeds": the seeds (default: base seed + 1..4).
    truncations: Sequence[float] | None = None,  # "truncation": the psis (default DEFAULT_TRUNCATIONS).
    other: OutfitSpec | None = None,            # "mix" / "interpolate": the second garment.
    layers: str | Sequence[str] = "fine",       # "mix": layer group(s) taken from `other`; one result each.
    steps: int = 5,                             # "interpolate": images on the path, ends included (2..64).
    colours: Sequence[str] | None = None,       # "colour": colour values (default: every colour of the schema).
) -> list[OutfitResult]:
    """Variants of `base`, in order, each with its `params`. InputError for bad arguments."""
    if mode not in VARIANT_MODES:
        raise InputError(f"unknown variant mode {mode!r}; the modes are: {', '.join(VARIANT_MODES)}")
    started = time.perf_counter()
    if mode == "seeds":
        seed_list = list(seeds) if seeds is not None else [(base.seed + k) % 2**32 for k in range(1, 5)]
        _check_count(seed_list, "seeds")
        for s in seed_list:
            check_seed(s)
        specs = [dataclasses.replace(base, seed=int(s)) for s in seed_list]
        params = [{"mode": mode, "seed": int(s)} for s in seed_list]
        return _from_specs(pipe, specs, params, started)
    if mode == "truncation":
        psis = list(truncations) if truncations is not None else list(DEFAULT_TRUNCATIONS)
        _check_count(psis, "truncations")
        for psi in psis:
            check_truncation(psi)
        specs = [dataclasses.replace(base, truncation=float(p)) for p in psis]
        params = [{"mode": mode, "truncation": float(p)} for p in psis]
        return _from_specs(pipe, specs, params, started)
    if mode == "colour":
        column = pipe.column_for("colour")
        wanted = list(colours) if colours is not None else list(pipe.values_of("colour"))
        _check_count(wanted, "colours")
        specs = []
        for colour in wanted:
            labels = pipe.resolve_labels(labels={**base.labels, column: colour})  # InputError lists colours.
            specs.append(dataclasses.replace(base, labels=labels))
        params = [{"mode": mode, "colour": s.labels[column]} for s in specs]
        return _from_specs(pipe, specs, params, started)

    if other is None:
        raise InputError(f"mode {mode!r} needs a second garment (`other`)")
    ws = pipe.map_specs([base, other])
    base_ws, other_ws = ws[0], ws[1]
    other_desc = {"labels": dict(other.labels), "seed": other.seed, "truncation": other.truncation}
    if mode == "mix":
        groups = [layers] if isinstance(layers, str) else list(layers)
        if not groups:
            raise InputError(f"give at least one layer group to mix ({', '.join(LAYER_GROUPS)})")
        latents: list[torch.Tensor] = []
        mix_params: list[dict[str, Any]] = []
        for group in groups:
            idx = pipe.layer_indices(group)  # InputError for an unknown group.
            mixed = base_ws.clone()
            mixed[idx] = other_ws[idx]
            latents.append(mixed)
            mix_params.append({"mode": mode, "layers": group, "ws_indices": idx, "other": other_desc})
        return _from_latents(pipe, base, torch.stack(latents), mix_params, started)
    # interpolate
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_VARIANTS:
        raise InputError(f"steps must be an integer in 2..{MAX_VARIANTS}, got {steps!r}")
    ts = torch.linspace(0, 1, steps, device=base_ws.device)
    latents_t = base_ws[None].lerp(other_ws[None], ts.reshape(-1, 1, 1))
    params_list: list[dict[str, Any]] = [
        {"mode": mode, "t": round(float(t), 6), "step": i, "other": other_desc} for i, t in enumerate(ts)
    ]
    return _from_latents(pipe, base, latents_t, params_list, started)


def _check_count(items: Sequence[Any], what: str) -> None:
    if not items:
        raise InputError(f"give at least one of {what}")
    if len(items) > MAX_VARIANTS:
        raise InputError(f"at most {MAX_VARIANTS} {what} per call, got {len(items)}")


def _from_specs(
    pipe: FashionPipeline, specs: list[OutfitSpec], params: list[dict[str, Any]], started: float
) -> list[OutfitResult]:
    mapped_at = time.perf_counter()
    ws, images = pipe.generate_specs(specs)
    seconds = (time.perf_counter() - mapped_at) / len(specs)
    ws_np = ws.cpu().numpy().astype(np.float32)
    return [
        OutfitResult(
            image=Image.fromarray(img),
            labels=dict(spec.labels),
            seed=spec.seed,
            truncation=spec.truncation,
            ws=ws_np[i],
            timings={"prepare_s": mapped_at - started, "generate_s": seconds},
            params=p,
        )
        for i, (spec, img, p) in enumerate(zip(specs, images, params, strict=True))
    ]


def _from_latents(
    pipe: FashionPipeline, base: OutfitSpec, ws: torch.Tensor, params: list[dict[str, Any]], started: float
) -> list[OutfitResult]:
    """Results for latents that are not one seed's (mixes, interpolations): seed None, base labels."""
    mapped_at = time.perf_counter()
    images = pipe.render(ws)
    seconds = (time.perf_counter() - mapped_at) / len(images)
    ws_np = ws.cpu().numpy().astype(np.float32)
    out = []
    for i, (img, p) in enumerate(zip(images, params, strict=True)):
        exact = p.get("t") == 0.0  # The first step of an interpolation is the base itself.
        out.append(
            OutfitResult(
                image=Image.fromarray(img),
                labels=dict(base.labels),
                seed=base.seed if exact else None,
                truncation=base.truncation,
                ws=ws_np[i],
                timings={"prepare_s": mapped_at - started, "generate_s": seconds},
                params={**p, "base": {"labels": dict(base.labels), "seed": base.seed, "truncation": base.truncation}},
            )
        )
    return out
