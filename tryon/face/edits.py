"""Attribute edits of a face latent: `edit_latent(models, latent, {"age": 10, "smile": 0.5})`.

Each edit moves the W+ latent along one fitted direction (tryon/face/directions.py), on that
direction's layers, by `strength * scale`; edits stack (they are added one after the other).

Strength units (the same for every direction, so sliders mean the same thing):
  one unit = two standard deviations of the generator's faces along the direction, i.e. roughly
  the distance between a typical face without the attribute and one with it. Age counts in tenths
  of that (age +10 = one unit; "years-ish", not calibrated years: CelebA only labels Young / not).
  The shipped directions' MODEL_CARD.md lists, per direction, how much the attribute classifier's
  logit moves per unit (measured on held-out samples), and the ranges are EDIT_RANGES.
  Exception: smile, glasses and age are calibrated on real photos (benchmarks/calibrate_edits.py):
  their +1 (age +10) is the multiple of that unit (x3, x1.5, x3) that moves the attribute classifier
  furthest on a try-on of a real photo while the other attributes move < 0.1 and the shopper stays
  recognisable (see the MODEL_CARD).

Signs: age + = older, gender + = more masculine (− = more feminine), smile + = smiling, pose + =
the face turns so that its midline moves to the image's right, glasses / blond_hair / bald /
mustache / beard / hat / makeup + = more of it.

`keep=("gender",)` makes the other edits conditional (InterFaceGAN): each direction is projected
onto the orthogonal complement of the kept attributes' normals, so those stay put to first order.
`layers` overrides the default layer range of all edits ("coarse", "middle+fine", (2, 6)) or of
some ({"smile": "middle"}).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tryon.errors import CheckpointError, InputError
from tryon.face.directions import (
    Direction,
    DirectionSet,
    LayerSpec,
    apply_directions,
    conditional_direction,
    describe_layers,
    resolve_layers,
)
from tryon.face.instructions import EDIT_NAMES, EDIT_RANGES, parse_instruction
from tryon.face.latent import FaceLatent
from tryon.face.models import ASSETS, FACE_DIR, FaceModels, render_face

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

DIRECTIONS_DIR = ASSETS / "face_directions"      # Shipped directions, fitted for tryon/assets/face.
_CACHE_KEY = "directions"

__all__ = [
    "EDIT_NAMES",
    "EDIT_RANGES",
    "edit_latent",
    "edit_ws",
    "face_directions",
    "parse_instruction",
    "resolve_strengths",
]


def default_directions_dir(models: FaceModels) -> Path:
    """Where the directions of `models` live: the shipped folder for the shipped G, else
    DIR/directions inside the face checkpoint folder (falling back to the shipped one)."""
    if Path(models.directory).resolve() == FACE_DIR.resolve():
        return DIRECTIONS_DIR
    own = Path(models.directory) / "directions"
    return own if own.is_dir() else DIRECTIONS_DIR


def face_directions(models: FaceModels, directory: str | Path | None = None) -> DirectionSet:
    """The directions for `models`' generator, loaded once and kept in `models.cache`.

    CheckpointError when there are none, or when they were fitted for another generator (they would
    edit the wrong things): refit with `tryon face-directions --checkpoint DIR --out DIR/directions`.
    """
    key = _CACHE_KEY if directory is None else f"{_CACHE_KEY}:{Path(directory).resolve()}"
    with models.lock:
        cached = models.cache.get(key)
        if cached is not None:
            return cached
        folder = Path(directory) if directory is not None else default_directions_dir(models)
        dset = DirectionSet.load(folder)
        fitted_for = dset.generator.get("sha256")
        if fitted_for != models.generator_sha256:
            raise CheckpointError(
                f"the face directions in {folder} were fitted for another generator "
                f"(sha256 {str(fitted_for)[:12]}…, this one is {models.generator_sha256[:12]}…); refit them with "
                f"`tryon face-directions --checkpoint {models.directory} --out DIR`"
            )
        if (dset.num_ws, dset.w_dim) != (models.num_ws, models.w_dim):
            raise CheckpointError(f"the face directions in {folder} are for [{dset.num_ws}, {dset.w_dim}] latents")
        models.cache[key] = dset
        return dset


def resolve_strengths(
    directions: DirectionSet,
    strengths: Mapping[str, float] | None = None,
    instruction: str | None = None,
) -> dict[str, float]:
    """Checked {name: strength}: the instruction's, then the explicit strengths (which win for the
    same name). InputError for an unknown name, a non-number or a strength outside the range."""
    resolved: dict[str, float] = {}
    if instruction is not None and instruction.strip():
        resolved.update(parse_instruction(instruction))
    for name, value in (strengths or {}).items():
        resolved[str(name)] = value
    unknown = [n for n in resolved if n not in directions.directions]
    if unknown:
        missing = [n for n in unknown if n in EDIT_NAMES]
        extra = f" ({', '.join(missing)} exist but were not fitted for this generator)" if missing else ""
        raise InputError(
            f"unknown edit name(s) {', '.join(repr(n) for n in unknown)}{extra}; "
            f"known: {', '.join(directions.directions)}"
        )
    out = {}
    for name, value in resolved.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"the strength of {name!r} must be a finite number, got {value!r}")
        lo, hi = directions.directions[name].range
        if not lo <= value <= hi:
            raise InputError(f"the strength of {name!r} must be within [{lo:g}, {hi:g}], got {value:g}")
        out[name] = float(value)
    return out


def edit_steps(
    directions: DirectionSet,
    strengths: Mapping[str, float],
    keep: Iterable[str] = (),
    layers: LayerSpec | Mapping[str, LayerSpec] | None = None,
) -> list[tuple[np.ndarray, float, tuple[int, int]]]:
    """Checked strengths -> (unit vector, W-distance, ws range) per non-zero edit (see apply_directions)."""
    keep = list(dict.fromkeys(keep))
    kept_normals = {k: directions.normal_for(k) for k in keep}
    if isinstance(layers, Mapping):
        unknown = [n for n in layers if n not in strengths]
        if unknown:
            raise InputError(f"layers given for {', '.join(map(repr, unknown))}, which are not being edited")
    steps = []
    for name, strength in strengths.items():
        if strength == 0:
            continue
        d: Direction = directions.get(name)
        spec = layers.get(name) if isinstance(layers, Mapping) else layers
        ws_range = d.layers if spec is None else resolve_layers(spec, directions.num_ws)
        if name in kept_normals or (d.attribute is not None and d.attribute in kept_normals):
            raise InputError(f"cannot edit {name!r} and keep it fixed at the same time")
        vector = conditional_direction(d.vector, list(kept_normals.values())) if kept_normals else d.vector
        steps.append((vector, strength * d.scale, ws_range))
    return steps


def edit_ws(
    directions: DirectionSet,
    ws: torch.Tensor,                               # [N, num_ws, w_dim] or [num_ws, w_dim].
    strengths: Mapping[str, float],                 # Checked (resolve_strengths).
    keep: Iterable[str] = (),
    layers: LayerSpec | Mapping[str, LayerSpec] | None = None,
) -> torch.Tensor:
    """Edited copy of `ws` (the math of `edit_latent`, batched)."""
    if tuple(ws.shape[-2:]) != (directions.num_ws, directions.w_dim):
        raise InputError(
            f"ws of shape {list(ws.shape)} do not fit directions for [{directions.num_ws}, {directions.w_dim}]"
        )
    return apply_directions(ws, edit_steps(directions, strengths, keep, layers))


def edit_latent(
    models: FaceModels,
    latent: FaceLatent,
    strengths: Mapping[str, float] | None = None,
    instruction: str | None = None,
    *,
    keep: Iterable[str] = (),
    layers: LayerSpec | Mapping[str, LayerSpec] | None = None,
    directions: DirectionSet | None = None,
) -> FaceLatent:
    """The latent with the edits applied (noise and tuning kept); `meta["edits"]` records them.

    strengths: {edit name: strength} (see the module docstring for units); instruction: text such
        as "older, smiling, no glasses" (tryon.face.instructions), merged under the strengths.
    keep: attributes to hold fixed (edit names such as "gender", or classifier heads such as "Male").
    layers: one LayerSpec for every edit or {name: LayerSpec}; None = each direction's default.
    directions: a DirectionSet; None = `face_directions(models)`.
    InputError for unknown names / words, strengths out of range, or a latent of another shape.
    """
    dset = directions if directions is not None else face_directions(models)
    if (latent.num_ws, latent.w_dim) != (dset.num_ws, dset.w_dim):
        raise InputError(
            f"the face latent has ws [{latent.num_ws}, {latent.w_dim}]; the edits need [{dset.num_ws}, {dset.w_dim}]"
        )
    resolved = resolve_strengths(dset, strengths, instruction)
    keep = list(keep)
    ws = edit_ws(dset, torch.from_numpy(latent.ws.copy()), resolved, keep, layers).numpy()
    record: dict[str, Any] = {"strengths": resolved}
    if keep:
        record["keep"] = keep
    if layers is not None:
        record["layers"] = (
            {n: describe_layers(resolve_layers(s, dset.num_ws), dset.num_ws) for n, s in layers.items()}
            if isinstance(layers, Mapping)
            else describe_layers(resolve_layers(layers, dset.num_ws), dset.num_ws)
        )
    if instruction:
        record["instruction"] = instruction
    history = [*latent.meta.get("edits", [])] if isinstance(latent.meta.get("edits"), list) else []
    return latent.replace(ws=ws.astype(np.float32), meta={**latent.meta, "edits": [*history, record]})


@dataclasses.dataclass(frozen=True)
class EditedFace:
    """A face after `edit_face`: its latent, its rendering, and the strengths applied."""

    latent: FaceLatent                  # The edited latent (`meta["edits"]` records this edit).
    image: Image.Image                  # Its rendering, RGB, res x res.
    strengths: dict[str, float]         # {edit name: strength} applied (an instruction's words included).


def edit_face(
    models: FaceModels,
    latent: FaceLatent,
    strengths: Mapping[str, float] | None = None,
    instruction: str | None = None,
    *,
    keep: Iterable[str] = (),
    mix: FaceLatent | None = None,
    mix_groups: str | Sequence[str] = ("fine",),
) -> EditedFace:
    """Edit a face and render it: the one path of the API's edits and the try-on's face.

    mix: another face whose `mix_groups` layer groups replace this one's first
        (`tryon.face.mixing.mix_styles`); None = no mixing. Then `edit_latent` with strengths,
        instruction and keep. No strengths and no instruction: the (mixed) latent as it is.
    InputError as `edit_latent` and `mix_styles` raise it.
    """
    edited = latent
    if mix is not None:
        from tryon.face.mixing import mix_styles

        edited = mix_styles(edited, mix, groups=mix_groups)
    applied = {str(k): float(v) for k, v in (strengths or {}).items()}
    if applied or (instruction and instruction.strip()):
        edited = edit_latent(models, edited, applied, instruction, keep=keep)
        applied = dict(edited.meta["edits"][-1]["strengths"])
    return EditedFace(latent=edited, image=render_face(models, edited), strengths=applied)
