"""`tryon face-directions`: fit the face edit directions for a face generator and save them.

    OMP_NUM_THREADS=1 tryon face-directions --out tryon/assets/face_directions --force   # 4-7 min, 1 thread

What it does (see tryon/face/directions.py for the math):

1. samples `--samples` w from the mapping network (seeded, no truncation), renders them with the
   G's constant noise and labels every render with the attribute classifier (face_features, the 40
   CelebA heads): its logit per head is the attribute's score;
2. InterFaceGAN: for every head, fits an L2 logistic regression on w (top / bottom quartile of the
   score) on the training share and measures it on the held-out share; the named edits (ATTRIBUTES:
   age = −Young, gender = Male, smile = Smiling, glasses = Eyeglasses, ...) are those normals, all
   40 are kept for conditional edits (`keep=`);
3. SeFa on the coarse layers' style affines and GANSpace (PCA of w), 8 components each;
4. pose: renders every candidate component's edit (±1 unit on the coarse layers) for held-out
   samples and picks the one that moves the face's left-right symmetry axis
   (`tryon.face.directions.symmetry_axis`) the most and most consistently — our yaw proxy;
5. measures every named direction on held-out samples: change of its own classifier logit per
   unit, mean |change| of the other named attributes' logits, identity drift (distance in the
   classifier's feature space), and for pose the yaw change; picks each attribute edit's default
   layers (its preferred group or all layers, whichever is more selective);
6. writes directions.safetensors + directions.json + MODEL_CARD.md + edits_grid.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.commands import GRID_FILE
from tryon.errors import InputError
from tryon.face.directions import (
    Direction,
    DirectionSet,
    describe_layers,
    fit_attribute_normal,
    layer_groups,
    pca_directions,
    resolve_layers,
    sefa_directions,
    symmetry_axis,
)
from tryon.face.edits import edit_ws
from tryon.face.instructions import DEFAULT_STEPS, EDIT_NAMES, EDIT_RANGES
from tryon.face.models import FaceModels, load_face_models, synthesize

log = logging.getLogger(__name__)

MODEL_CARD_FILE = "MODEL_CARD.md"
UNIT_STDS = 2.0                 # One unit of strength = this many stds of the samples along the direction.
AGE_UNITS_PER_UNIT = 10.0       # Age counts in tenths of a unit ("years-ish").
NUM_COMPONENTS = 8              # SeFa and GANSpace components kept.
POSE_CANDIDATES = 6             # Leading components of each method tried as the pose direction.
FACE_ROWS = (0.40, 0.95)        # Rows of the aligned layout from the eyes to the chin (symmetry axis for pose).

# (edit name, classifier head, sign: + edit = head present (+1) or absent (-1), default layers, description)
ATTRIBUTES: tuple[tuple[str, str, int, str, str], ...] = (
    ("age", "Young", -1, "all", "older (+) or younger (−)"),
    ("gender", "Male", 1, "all", "more masculine (+) or more feminine (−)"),
    ("smile", "Smiling", 1, "middle", "smiling (+) or serious (−)"),
    ("glasses", "Eyeglasses", 1, "coarse+middle", "eyeglasses on (+) or off (−)"),
    ("blond_hair", "Blond_Hair", 1, "middle+fine", "blond hair (+) or darker hair (−)"),
    ("bald", "Bald", 1, "coarse+middle", "bald (+) or more hair (−)"),
    ("mustache", "Mustache", 1, "middle", "a mustache (+) or none (−)"),
    ("beard", "No_Beard", -1, "middle", "a beard (+) or clean-shaven (−)"),
    ("hat", "Wearing_Hat", 1, "coarse+middle", "wearing a hat (+) or not (−)"),
    ("makeup", "Heavy_Makeup", 1, "middle+fine", "heavy makeup (+) or none (−)"),
)


# ----------------------------------------------------------------------------------------------------
# Rendering and measuring (shared with benchmarks/bench_face.py).


@torch.no_grad()
def render_ws(models: FaceModels, ws: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> images float [N, 3, res, res] in [-1, 1], rounded to 8 bits (what a
    saved PNG holds), on the CPU, with the G's constant noise."""
    out = []
    for start in range(0, len(ws), batch_size):
        img = synthesize(models, ws[start : start + batch_size].to(models.device))
        out.append(((img * 127.5 + 128).clamp(0, 255).floor() / 127.5 - 1).cpu())
    return torch.cat(out) if out else torch.zeros([0, 3, models.resolution, models.resolution])


@torch.no_grad()
def classify(models: FaceModels, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """images [N, 3, H, W] -> (classifier features [N, F], attribute scores [N, num_attributes]).

    An attribute's score is its logit: for a yes/no softmax head (face_features' CelebA heads, values
    ["no", "yes"]) logit(yes) − logit(no), for a sigmoid head its one logit. Columns follow
    `attribute_columns`."""
    net = _classifier(models)
    picks = _score_picks(net)
    feats, scores = [], []
    for start in range(0, len(images), batch_size):
        f, lg = net(images[start : start + batch_size].to(models.device))
        feats.append(f.cpu())
        lg = lg.cpu()
        scores.append(torch.stack([lg[:, yes] - (lg[:, no] if no is not None else 0) for yes, no in picks], dim=1))
    return torch.cat(feats), torch.cat(scores)


def attribute_columns(models: FaceModels) -> dict[str, int]:
    """{attribute head name: its column in `classify`'s scores} (yes/no and sigmoid heads only)."""
    net = _classifier(models)
    return {h.name: k for k, h in enumerate(h for h in net.heads if _is_yes_no(h))}


def _is_yes_no(head: Any) -> bool:
    return bool(head.binary or (len(head.values) == 2 and "yes" in head.values and "no" in head.values))


def _score_picks(net: Any) -> list[tuple[int, int | None]]:
    """(column of the 'yes' logit, column of the 'no' logit or None) per yes/no head."""
    picks: list[tuple[int, int | None]] = []
    offset = 0
    for head in net.heads:
        if head.binary:
            picks.append((offset, None))
        elif _is_yes_no(head):
            picks.append((offset + head.values.index("yes"), offset + head.values.index("no")))
        offset += head.num_logits
    return picks


def _classifier(models: FaceModels) -> Any:
    if models.classifier is None:
        raise InputError("fitting and measuring edit directions needs the attribute classifier (face_features)")
    return models.classifier


def sample_ws(models: FaceModels, num: int, seed: int) -> torch.Tensor:
    """`num` w from the mapping network (z seeded, no truncation) -> [num, num_ws, w_dim] on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([num, models.G.z_dim], generator=gen)
    with torch.no_grad():
        return models.G.mapping(z.to(models.device), None).cpu()


def landmark_yaw(images: torch.Tensor, upscale: int = 256) -> torch.Tensor:
    """Head yaw in degrees per image (NaN where mediapipe's face mesh finds no face).

    images float [N, 3, H, W] in [-1, 1], upscaled to `upscale` px (the mesh wants a face that fills
    a good part of a larger image). Yaw = the angle of the cheek-to-cheek line (landmarks 234, 454)
    in the x-z plane: + = the face turns so that its nose points to the image's right (the same sign
    as `symmetry_axis`); a mirrored face reads the opposite angle.
    """
    import math

    from PIL import Image

    from tryon.imaging import to_uint8
    from tryon.vision.detectors import detect_face_mesh

    out = torch.full([len(images)], float("nan"))
    for i, a in enumerate(to_uint8(images)):
        big = np.asarray(Image.fromarray(a).resize((upscale, upscale), Image.Resampling.LANCZOS))
        meshes = detect_face_mesh(big, refine=False)
        if meshes:
            lm = meshes[0].landmarks
            out[i] = math.degrees(math.atan2(lm[454, 2] - lm[234, 2], lm[454, 0] - lm[234, 0]))
    return out


def edit_response(
    models: FaceModels,
    directions: DirectionSet,
    ws: torch.Tensor,                           # [M, num_ws, w_dim] faces to edit.
    name: str,                                  # Direction to measure.
    strength: float | None = None,              # Edited at ±strength; None = one step (age 10, others 1).
    base: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,  # (images, feats, logits) of ws.
    keep: Sequence[str] = (),
    layers: Any = None,
    yaw: bool = False,                          # Also measure the face mesh yaw (slower; for pose).
) -> dict[str, float]:
    """What one step of an edit does (a step = 1 unit; for age, 10 units), measured on `ws` from
    renders at +strength and −strength:

    target_per_unit     change of the direction's own attribute logit (as named: age + = less
                        Young) per step (attribute directions only);
    others_per_unit     mean |change| of the other named attributes' logits per step;
    identity_drift      mean classifier-feature distance of the +strength edit to the unedited face;
    axis_px_per_unit    shift of the lower face's left-right symmetry axis, px per step (the yaw proxy);
    yaw_deg_per_unit    (yaw=True) face mesh yaw change, degrees per step, over faces found both times;
    yaw_found           (yaw=True) share of those faces;
    pixel_change        mean |pixel change| (0..2 scale) of the +strength edit.
    """
    d = directions.get(name)
    step = DEFAULT_STEPS.get(name, 1.0)
    strength = step if strength is None else strength
    steps = strength / step
    cols = attribute_columns(models)
    if base is None:
        imgs0 = render_ws(models, ws)
        f0, _ = classify(models, imgs0)
    else:
        imgs0, f0, _ = base
    plus = edit_ws(directions, ws, {name: strength}, keep, layers)
    minus = edit_ws(directions, ws, {name: -strength}, keep, layers)
    imgs_p, imgs_m = render_ws(models, plus), render_ws(models, minus)
    f_p, l_p = classify(models, imgs_p)
    _, l_m = classify(models, imgs_m)
    per_unit = (l_p - l_m) / (2 * steps)                            # [M, heads]
    out: dict[str, float] = {}
    named = {n: (head, sign) for n, head, sign, _, _ in ATTRIBUTES if head in cols}
    if d.attribute is not None and d.attribute in cols:
        out["target_per_unit"] = float(d.sign * per_unit[:, cols[d.attribute]].mean())
    own = d.attribute
    other_cols = [cols[h] for _, (h, _) in named.items() if h != own]
    out["others_per_unit"] = float(per_unit[:, other_cols].abs().mean()) if other_cols else float("nan")
    out["identity_drift"] = float((f_p - f0).norm(dim=1).mean())
    axis = (symmetry_axis(imgs_p, rows=FACE_ROWS) - symmetry_axis(imgs_m, rows=FACE_ROWS)) / (2 * steps)
    out["axis_px_per_unit"] = float(axis.mean())
    if yaw:
        change = (landmark_yaw(imgs_p) - landmark_yaw(imgs_m)) / (2 * steps)
        found = torch.isfinite(change)
        out["yaw_deg_per_unit"] = float(change[found].mean()) if found.any() else float("nan")
        out["yaw_found"] = float(found.float().mean())
    out["pixel_change"] = float((imgs_p - imgs0).abs().mean())
    return out


# ----------------------------------------------------------------------------------------------------
# Fitting.


def fit_face_directions(
    models: FaceModels,
    *,
    num_samples: int = 4000,                    # w samples rendered and labelled.
    val_fraction: float = 0.2,                  # Held-out share (accuracies, pose choice, responses).
    seed: int = 0,                              # Seed of the z samples.
    probe: int = 32,                            # Held-out faces rendered per candidate / response.
    batch_size: int = 64,                       # Render batch.
    progress: Callable[[str], None] | None = None,  # Called with a line of text at each stage.
) -> DirectionSet:
    """Fit every direction for `models.G` (needs `models.classifier`); see the module docstring."""
    say = progress or (lambda msg: log.info("%s", msg))
    if num_samples < 50:
        raise InputError(f"--samples must be at least 50, got {num_samples}")
    if not 0 < val_fraction < 1:
        raise InputError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    t0 = time.perf_counter()
    cols = attribute_columns(models)
    groups = layer_groups(models.num_ws)

    # 1. Sample, render, label.
    ws_all = sample_ws(models, num_samples, seed)
    w = ws_all[:, 0].numpy().astype(np.float64)
    logits_parts = []
    step = max(batch_size, 256)
    for start in range(0, num_samples, step):
        imgs = render_ws(models, ws_all[start : start + step], batch_size)
        logits_parts.append(classify(models, imgs)[1])
        say(f"rendered and labelled {min(start + step, num_samples)}/{num_samples} samples "
            f"({time.perf_counter() - t0:.0f} s)")
    logits = torch.cat(logits_parts).numpy().astype(np.float64)
    t_render = time.perf_counter() - t0
    num_val = max(1, round(num_samples * val_fraction))
    tr, va = slice(0, num_samples - num_val), slice(num_samples - num_val, num_samples)

    # 2. InterFaceGAN normals for every binary head.
    normals: dict[str, np.ndarray] = {}
    head_metrics: dict[str, dict[str, float]] = {}
    for head, col in cols.items():
        normal, metrics = fit_attribute_normal(w[tr], logits[tr, col], w[va], logits[va, col])
        normals[head] = normal
        head_metrics[head] = {**metrics, "positive_share": round(float((logits[:, col] > 0).mean()), 4)}
    say(f"fitted {len(normals)} attribute normals ({time.perf_counter() - t0:.0f} s)")

    directions: dict[str, Direction] = {}
    for name, head, sign, layer_group, description in ATTRIBUTES:
        if head not in normals:
            log.warning("the classifier has no head %r: no %r direction", head, name)
            continue
        vector = (sign * normals[head]).astype(np.float32)
        std = float((w @ vector.astype(np.float64)).std())
        per = AGE_UNITS_PER_UNIT if name == "age" else 1.0
        unit = (f"1/{per:g} of two stds of the generator's faces along the {head} normal (age +10 = one clear step)"
                if name == "age" else f"two stds of the generator's faces along the {head} normal")
        directions[name] = Direction(
            name=name, vector=vector, scale=UNIT_STDS * std / per,
            layers=resolve_layers(layer_group, models.num_ws), range=EDIT_RANGES[name], kind="attribute",
            unit=unit, description=description, attribute=head, sign=sign,
            metrics={"classifier_head": head, **head_metrics[head]},
        )

    # 3. SeFa (coarse layers) and GANSpace.
    sefa_vecs, sefa_eig = sefa_directions(models.G, groups["coarse"], NUM_COMPONENTS)
    pca_vecs, pca_std = pca_directions(w, NUM_COMPONENTS)
    components: dict[str, Direction] = {}
    for k, vec in enumerate(sefa_vecs):
        std = float((w @ vec.astype(np.float64)).std())
        components[f"sefa{k}"] = Direction(
            name=f"sefa{k}", vector=vec, scale=UNIT_STDS * std, layers=groups["coarse"], range=(-1.5, 1.5),
            kind="sefa", unit="two stds of the generator's faces along the component",
            description=f"SeFa component {k} of the coarse layers (unlabelled)",
            metrics={"eigenvalue": round(float(sefa_eig[k]), 5), "std": round(std, 5)},
        )
    for k, vec in enumerate(pca_vecs):
        components[f"pca{k}"] = Direction(
            name=f"pca{k}", vector=vec, scale=UNIT_STDS * float(pca_std[k]), layers=(0, models.num_ws),
            range=(-1.5, 1.5), kind="ganspace", unit="two stds of the generator's faces along the component",
            description=f"GANSpace principal component {k} of W (unlabelled)",
            metrics={"std": round(float(pca_std[k]), 5)},
        )
    say(f"SeFa and GANSpace components ({time.perf_counter() - t0:.0f} s)")

    # 4. Pose: the component whose coarse-layer edit turns the face most consistently. Measured by
    # mediapipe's face mesh (yaw from the 3-D cheek landmarks) when it finds faces in at least half
    # of the renders, else by the symmetry axis of the lower face.
    probe_ws = ws_all[va][:probe]
    probe_set = DirectionSet(directions=components, normals={}, w_dim=models.w_dim, num_ws=models.num_ws,
                             generator={})
    detect_rate = float(torch.isfinite(landmark_yaw(render_ws(models, probe_ws))).float().mean())
    measure = "landmark_yaw" if detect_rate >= 0.5 else "symmetry_axis"
    pose_table: list[dict[str, Any]] = []
    for name in [f"sefa{k}" for k in range(POSE_CANDIDATES)] + [f"pca{k}" for k in range(POSE_CANDIDATES)]:
        plus = render_ws(models, edit_ws(probe_set, probe_ws, {name: 1.0}, layers="coarse"))
        minus = render_ws(models, edit_ws(probe_set, probe_ws, {name: -1.0}, layers="coarse"))
        shift = (symmetry_axis(plus, rows=FACE_ROWS) - symmetry_axis(minus, rows=FACE_ROWS)) / 2  # px / unit
        row: dict[str, Any] = {"component": name, "axis_px_per_unit": round(float(shift.mean()), 4)}
        if measure == "landmark_yaw":
            change = (landmark_yaw(plus) - landmark_yaw(minus)) / 2                         # degrees / unit
            row["yaw_deg_per_unit"] = round(float(change.nanmean()), 4)
            change = change[torch.isfinite(change)]
        else:
            change = shift
        mean = float(change.mean()) if len(change) else 0.0
        agree = float((torch.sign(change) == np.sign(mean)).float().mean()) if mean else 0.0
        row.update(same_sign_share=round(agree, 4), score=round(abs(mean) * agree, 4),
                   pixel_change=round(float((plus - minus).abs().mean() / 2), 4))
        pose_table.append(row)
    best = max(pose_table, key=lambda r: r["score"])
    src = components[str(best["component"])]
    lead = "yaw_deg_per_unit" if measure == "landmark_yaw" else "axis_px_per_unit"
    sign = 1 if float(best[lead]) >= 0 else -1
    pose = Direction(
        name="pose", vector=(sign * src.vector).astype(np.float32), scale=src.scale, layers=groups["coarse"],
        range=EDIT_RANGES["pose"], kind=src.kind,
        unit=f"two stds of the generator's faces along {src.name} (the component chosen as yaw)",
        description="turns the face: + moves its midline to the image's right, − to the left",
        metrics={"source": src.name, "sign": sign, "measure": measure,
                 "face_mesh_detection_rate": round(detect_rate, 3),
                 **{k: (v * sign if k.endswith("_per_unit") else v) for k, v in best.items() if k != "component"}},
    )
    ordered = {n: directions[n] for n in EDIT_NAMES if n in directions}
    ordered = {**{k: v for k, v in ordered.items() if k in ("age", "gender", "smile")}, "pose": pose,
               **{k: v for k, v in ordered.items() if k not in ("age", "gender", "smile")}}
    say(f"pose = {src.name} by {measure} ({float(best[lead]) * sign:+.2f} per unit, {best['same_sign_share']:.0%} "
        f"agree; face mesh found {detect_rate:.0%} of the faces; {time.perf_counter() - t0:.0f} s)")

    dset = DirectionSet(
        directions={**ordered, **components}, normals=normals, w_dim=models.w_dim, num_ws=models.num_ws,
        generator={"sha256": models.generator_sha256, "directory": str(models.directory)},
    )

    # 5. Responses of the named directions on held-out faces. An attribute direction's default layers
    # are its preferred group (ATTRIBUTES) or all layers, whichever moves its own attribute more
    # than the others (largest target − others, per step).
    base_imgs = render_ws(models, probe_ws)
    f0, l0 = classify(models, base_imgs)
    for name in ordered:
        d = dset.directions[name]
        r = edit_response(models, dset, probe_ws, name, base=(base_imgs, f0, l0),
                          yaw=name == "pose" and measure == "landmark_yaw")
        extra: dict[str, Any] = {}
        if d.kind == "attribute" and d.layers != (0, models.num_ws):
            r_all = edit_response(models, dset, probe_ws, name, base=(base_imgs, f0, l0), layers="all")
            net, net_all = (x["target_per_unit"] - x["others_per_unit"] for x in (r, r_all))
            extra["layer_choice"] = {describe_layers(d.layers, models.num_ws): round(net, 4), "all": round(net_all, 4)}
            if net_all > net:
                r = r_all
                d = dataclasses.replace(d, layers=(0, models.num_ws))
        dset.directions[name] = dataclasses.replace(
            d, metrics={**d.metrics, **extra, "response": {k: round(v, 4) for k, v in r.items()}}
        )
    pair = f0[torch.randperm(len(f0), generator=torch.Generator().manual_seed(1))]
    between_faces = float((f0 - pair).norm(dim=1).mean())
    say(f"measured {len(ordered)} directions on {len(probe_ws)} held-out faces ({time.perf_counter() - t0:.0f} s)")

    dset.meta = {
        "samples": num_samples, "val_samples": num_val, "seed": seed, "probe": len(probe_ws),
        "unit_stds": UNIT_STDS, "seconds": round(time.perf_counter() - t0, 1),
        "render_seconds": round(t_render, 1), "threads": torch.get_num_threads(),
        "feature_distance_between_faces": round(between_faces, 4), "pose_candidates": pose_table,
        "heads": head_metrics,
    }
    return dset


def edits_grid(models: FaceModels, dset: DirectionSet, names: Iterable[str], seeds: Sequence[int] = (0, 1),
               strengths: Sequence[float] = (-1.5, -0.75, 0.0, 0.75, 1.5)) -> np.ndarray:
    """One row per (direction, seed): the face edited at each strength (in units; age ×10) -> uint8
    grid [rows·res, cols·res, 3]."""
    from tryon.imaging import make_grid, to_uint8

    rows = []
    for name in names:
        unit = AGE_UNITS_PER_UNIT if name == "age" else 1.0
        for seed in seeds:
            ws = sample_ws(models, 1, 10_000 + seed)
            batch = torch.cat([edit_ws(dset, ws, {name: s * unit}) if s else ws for s in strengths])
            rows.append(render_ws(models, batch))
    return make_grid(to_uint8(torch.cat(rows)), cols=len(strengths))


# ----------------------------------------------------------------------------------------------------
# Model card.


def model_card(dset: DirectionSet, command: str, generator_training: Mapping[str, Any] | None) -> str:
    meta = dset.meta
    kimg = (generator_training or {}).get("kimg")
    lines = [
        "# Face edit directions",
        "",
        "Directions in W of the face generator for `tryon edit`, `edit_latent` and `POST /v1/faces/{id}/edits`. "
        "Fitted by `tryon face-directions` (training/face_directions.py) for one generator only: "
        f"G_ema sha256 `{dset.generator.get('sha256', '?')}` ({dset.generator.get('directory', '?')}"
        + (f", {kimg} kimg" if kimg is not None else "") + "). Using them with another generator is refused.",
        "",
        "## How",
        "",
        f"- command: `{command}`",
        f"- {meta['samples']:,} w sampled from the mapping network (seed {meta['seed']}, no truncation), rendered "
        "with the G's constant noise, labelled by the attribute classifier `tryon/assets/face_features` (its logit "
        "per head); "
        f"the last {meta['val_samples']:,} are held out.",
        "- default layers of an attribute edit: its preferred group (smile: middle; glasses, bald, hat: coarse+middle; "
        "blond hair, makeup: middle+fine; mustache, beard: middle) or all layers, whichever gave the larger "
        "(own logit change − mean abs change of the others) per step on the held-out faces (`layer_choice` in "
        "directions.json).",
        "- attribute directions (InterFaceGAN): per head, an L2 logistic regression on w separating the top from the "
        "bottom quartile of the logit; the unit normal of the boundary is the direction (all 40 heads are stored as "
        "normals for conditional edits, `keep=`).",
        "- unsupervised: SeFa (eigenvectors of the stacked, column-normalised style-affine weights of the coarse "
        f"layers) and GANSpace (PCA of w), {NUM_COMPONENTS} each, as `sefa0..` and `pca0..`.",
        "- pose: each of the first SeFa / GANSpace components was applied at ±1 unit on the coarse layers to "
        f"{meta['probe']} held-out faces and the change of head yaw measured: from mediapipe's face mesh (the angle of "
        "the cheek-to-cheek line in depth) when it finds the faces, else from the left–right symmetry axis of the "
        "lower face (the shift that best matches it with its mirror image, `symmetry_axis`). The component with "
        "the largest |change| × (share of faces that turn the same way) is `pose` (table below).",
        f"- units: one unit of strength = {UNIT_STDS:g} standard deviations of the sampled faces along the direction "
        f"(age counts in tenths: age +10 = one unit). Ranges: age ±15, the others ±1.5.",
        f"- fitted in {meta['seconds']:.0f} s ({meta['render_seconds']:.0f} s rendering) on {meta['threads']} CPU "
        "thread(s).",
        "",
        "## Named directions",
        "",
        "Held-out: accuracy of the linear boundary on held-out samples labelled by the classifier (top / bottom "
        "quartile); correlation of w·n with the logit over all held-out samples. Response, per step (1 unit; age: "
        f"10 units), on {meta['probe']} held-out faces rendered at ±1 step: change of the direction's own logit (as "
        "named), mean |change| of the other named attributes' logits, identity drift (classifier-feature distance "
        "of the +1 step edit to the unedited face; two different random faces are "
        f"{meta['feature_distance_between_faces']:.2f} apart), symmetry-axis shift.",
        "",
        "| edit | source | layers (own − others per step: preferred, all) | held-out acc. | corr. "
        "| Δ own logit / step | mean abs Δ others / step "
        "| identity drift | axis px / step | yaw ° / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    pose = dset.directions["pose"]
    for name, d in dset.directions.items():
        if d.kind != "attribute" and name != "pose":
            continue
        r = d.metrics.get("response", {})
        source = d.attribute if d.attribute else str(d.metrics.get("source"))
        if d.sign < 0 and d.attribute:
            source = f"−{source}"
        layers = describe_layers(d.layers, dset.num_ws)
        choice = d.metrics.get("layer_choice")
        if choice:
            layers += " (" + ", ".join(f"{k} {v:+.2f}" for k, v in choice.items()) + ")"
        acc = d.metrics.get("val_accuracy")
        corr = d.metrics.get("val_correlation")
        lines.append(
            f"| {name} | {source} | {layers} | {_fmt(acc)} | {_fmt(corr)} | "
            f"{_fmt(r.get('target_per_unit'))} | {_fmt(r.get('others_per_unit'))} | {_fmt(r.get('identity_drift'))} | "
            f"{_fmt(r.get('axis_px_per_unit'))} | {_fmt(r.get('yaw_deg_per_unit'))} |"
        )
    lines += [
        "",
        "## Pose candidates",
        "",
        f"Chosen by {pose.metrics.get('measure')} (mediapipe's face mesh found a face in "
        f"{float(pose.metrics.get('face_mesh_detection_rate', 0)):.0%} of the unedited renders; the yaw from its "
        "landmarks is used when that is at least half, else the symmetry axis of the lower face). Score = "
        "|mean change per unit| × share of faces that change the same way.",
        "",
        "| component | axis px / unit | yaw ° / unit | same-sign share | score | mean abs pixel change / unit |",
        "|---|---|---|---|---|---|",
    ]
    for row in meta["pose_candidates"]:
        lines.append(f"| {row['component']} | {row['axis_px_per_unit']:+.3f} | {_fmt(row.get('yaw_deg_per_unit'))} | "
                     f"{row['same_sign_share']:.2f} | {row['score']:.3f} | {row['pixel_change']:.4f} |")
    lines += [
        "",
        "## All classifier heads (held-out accuracy of the fitted boundary)",
        "",
        "| head | held-out acc. | corr. | share of samples the classifier calls positive |",
        "|---|---|---|---|",
    ]
    for head, m in meta["heads"].items():
        lines.append(
            f"| {head} | {_fmt(m['val_accuracy'])} | {_fmt(m['val_correlation'])} | {m['positive_share']:.3f} |"
        )
    lines += [
        "",
        "## Limits",
        "",
        "- The labels come from our own small classifier run on generated faces, not from people: a direction is only "
        "as good as that classifier on this generator's images (a weak generator makes faces the classifier reads "
        "poorly, and correlated attributes — age with glasses or baldness, gender with makeup — leak into each other; "
        "`keep=` removes the kept attributes' components).",
        "- Pose is unsupervised: chosen by a 2-D symmetry measure, not a 3-D head pose; its sign convention is the "
        "image's right.",
        "- No StyleCLIP free-text directions: they need CLIP weights, which are not available offline.",
        "",
        f"`{GRID_FILE}`: rows = (direction, sample), columns = strength −1.5, −0.75, 0, +0.75, +1.5 units (age ×10).",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not np.isfinite(value):
        return "nan"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------------------------------
# CLI.


def run_face_directions_cli(args: argparse.Namespace) -> int:
    from tryon.checkpoint import read_checkpoint_config
    from tryon.face.directions import DIRECTIONS_FILE
    from tryon.imaging import save_image

    out = Path(args.out)
    if (out / DIRECTIONS_FILE).exists() and not args.force:
        raise InputError(f"{out} already holds directions (use --force to replace them)")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.classifier is not None and not Path(args.classifier).is_dir():
        raise InputError(f"no classifier folder {args.classifier}")
    models = load_face_models(args.checkpoint, device=args.device, encoder=False,
                              classifier=args.classifier if args.classifier else (None if args.checkpoint is None
                                                                                    else _shipped_classifier()))

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    dset = fit_face_directions(models, num_samples=args.samples, val_fraction=args.val_fraction, seed=args.seed,
                               probe=args.probe, progress=progress)
    parts = ["tryon", "face-directions", "--out", args.out, "--samples", str(args.samples), "--seed", str(args.seed)]
    for flag, value in (("--checkpoint", args.checkpoint), ("--classifier", args.classifier),
                        ("--threads", args.threads)):
        if value is not None:
            parts += [flag, str(value)]
    command = shlex.join(parts)
    training = read_checkpoint_config(models.directory).get("training") or {}
    dset.generator["kimg"] = training.get("kimg")
    dset.meta["command"] = command
    dset.save(out)
    (out / MODEL_CARD_FILE).write_text(model_card(dset, command, training), encoding="utf-8")
    if not args.no_grid:
        names = [n for n, d in dset.directions.items() if d.kind == "attribute" or n == "pose"]
        save_image(out / GRID_FILE, edits_grid(models, dset, names))
    print(f"{'edit':<11} {'acc':>6} {'corr':>6} {'own/unit':>9} {'others':>7} {'drift':>6} {'axis px':>8}")
    for name, d in dset.directions.items():
        if d.kind != "attribute" and name != "pose":
            continue
        r = d.metrics.get("response", {})
        print(f"{name:<11} {_num(d.metrics.get('val_accuracy')):>6} {_num(d.metrics.get('val_correlation')):>6} "
              f"{_num(r.get('target_per_unit')):>9} {_num(r.get('others_per_unit')):>7} "
              f"{_num(r.get('identity_drift')):>6} {_num(r.get('axis_px_per_unit')):>8}")
    print(f"wrote {out} in {dset.meta['seconds']:.0f} s")
    log.info("directions: %s", json.dumps(sorted(dset.directions)))
    return 0


def _shipped_classifier() -> Path:
    from tryon.face.models import FEATURES_DIR

    return FEATURES_DIR


def _num(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"
