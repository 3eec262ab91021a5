"""Latent directions of the face generator: what they are, how they are stored, and the math that finds them.

A direction is a unit vector in W (the mapping network's output space, [w_dim]) with a scale (the
W-distance of one unit of strength) and a default layer range (the ws indices it is added to). An
edit adds `strength * scale * vector` to those ws of a W+ latent [num_ws, w_dim].

Three families, all fitted by `tryon face-directions` (training/face_directions.py):

- attribute directions (InterFaceGAN, Shen et al. 2020): sample w from the mapping network, render,
  label with the shipped attribute classifier (tryon/assets/face_features), fit a linear classifier
  (`fit_attribute_normal`: L2 logistic regression) on w; the unit normal of its boundary is the
  direction. `conditional_direction` removes the components along other normals (the edit then keeps
  those attributes, to first order).
- SeFa (Shen & Zhou 2021, `sefa_directions`): closed-form, the eigenvectors of AᵀA where A stacks the
  style-affine weights of the chosen synthesis layers.
- GANSpace (Härkönen et al. 2020, `pca_directions`): principal components of sampled w.

A fitted set is a folder: `directions.safetensors` (vectors and normals) + `directions.json` (names,
units, scales, layer ranges, held-out accuracies, the generator's sha256) + MODEL_CARD.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tryon.errors import CheckpointError, InputError
from tryon.nn.layer_groups import layer_groups

DIRECTIONS_FILE = "directions.json"
VECTORS_FILE = "directions.safetensors"
FORMAT_NAME = "tryon-face-directions"
FORMAT_VERSION = 1

# A layer range: a group name ("coarse", "middle", "fine", "all", or several joined by "+", e.g.
# "coarse+middle") or explicit ws indices (start, stop), stop exclusive.
LayerSpec = str | tuple[int, int]

# ----------------------------------------------------------------------------------------------------
# Layer groups.


def resolve_layers(spec: LayerSpec, num_ws: int) -> tuple[int, int]:
    """A LayerSpec -> (start, stop) ws indices; InputError for an unknown group or a bad range."""
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise InputError(f"a layer range is (start, stop), got {spec!r}")
        start, stop = int(spec[0]), int(spec[1])
        if not 0 <= start < stop <= num_ws:
            raise InputError(f"layer range {start}..{stop} is outside 0..{num_ws} (this generator has {num_ws} ws)")
        return start, stop
    groups = layer_groups(num_ws)
    text = str(spec).strip().lower()
    if text == "all":
        return 0, num_ws
    names = [p.strip() for p in text.split("+") if p.strip()]
    unknown = [n for n in names if n not in groups]
    if unknown or not names:
        raise InputError(
            f"unknown layer group {spec!r}: use coarse, middle, fine, all, or several joined by '+' (coarse+middle)"
        )
    ranges = sorted(groups[n] for n in names)
    for (_, stop), (start, _) in itertools.pairwise(ranges):
        if start != stop:
            raise InputError(f"layer groups {spec!r} are not contiguous; give one range (e.g. coarse+middle)")
    return ranges[0][0], ranges[-1][1]


def describe_layers(layers: tuple[int, int], num_ws: int) -> str:
    """(start, stop) -> "coarse", "coarse+middle" or "ws 2..5"."""
    groups = layer_groups(num_ws)
    if layers == (0, num_ws):
        return "all"
    names = [n for n, (a, b) in groups.items() if a >= layers[0] and b <= layers[1] and a < b]
    if names and resolve_layers("+".join(names), num_ws) == tuple(layers):
        return "+".join(names)
    return f"ws {layers[0]}..{layers[1] - 1}"


# ----------------------------------------------------------------------------------------------------
# Directions and their storage.


@dataclasses.dataclass(frozen=True)
class Direction:
    """One editable direction in W."""

    name: str                           # Edit name, e.g. "age", "pose", "sefa3".
    vector: np.ndarray                  # float32 [w_dim], unit length; + = more of `name`.
    scale: float                        # W-distance of one unit of strength.
    layers: tuple[int, int]             # Default ws range (start, stop) the edit is added to.
    range: tuple[float, float]          # Strengths a user may ask for (sliders use it).
    kind: str                           # "attribute" (InterFaceGAN), "sefa" or "ganspace".
    unit: str                           # What one unit of strength means, for people.
    description: str                    # One line for the API and the UI.
    attribute: str | None = None        # Classifier head the direction was fitted on (attribute kind).
    sign: int = 1                       # +1: + = the attribute present; -1: + = absent (age = not Young).
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # Held-out accuracy, responses.

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": float(self.scale),
            "layers": list(self.layers),
            "range": [float(self.range[0]), float(self.range[1])],
            "kind": self.kind,
            "unit": self.unit,
            "description": self.description,
            "attribute": self.attribute,
            "sign": int(self.sign),
            "metrics": dict(self.metrics),
        }


@dataclasses.dataclass
class DirectionSet:
    """The directions fitted for one generator (see the module docstring for the files)."""

    directions: dict[str, Direction]            # {name: Direction}, in display order.
    normals: dict[str, np.ndarray]              # {classifier head: unit normal [w_dim]} for conditional edits.
    w_dim: int
    num_ws: int
    generator: dict[str, Any]                   # {"sha256": G_ema's, "kimg": ..., "directory": ...}.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # Command, samples, seconds, pose table...
    directory: Path | None = None               # Where it was loaded from.

    def get(self, name: str) -> Direction:
        if name not in self.directions:
            raise InputError(f"unknown edit {name!r}; known: {', '.join(self.directions)}")
        return self.directions[name]

    def normal_for(self, name: str) -> np.ndarray:
        """Unit normal of an attribute by edit name ("gender") or classifier head ("Male"), oriented
        like the edit (+ = more of the named thing)."""
        direction = self.directions.get(name)
        if direction is not None and direction.kind == "attribute":
            return direction.vector
        if name in self.normals:
            return self.normals[name]
        known = [n for n, d in self.directions.items() if d.kind == "attribute"] + sorted(self.normals)
        raise InputError(f"cannot keep {name!r} fixed: no attribute normal by that name; known: {', '.join(known)}")

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write directions.safetensors + directions.json into `directory` (created)."""
        import safetensors.numpy

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"direction.{n}": np.ascontiguousarray(d.vector, dtype=np.float32) for n, d in self.directions.items()
        }
        tensors.update({f"normal.{n}": np.ascontiguousarray(v, dtype=np.float32) for n, v in self.normals.items()})
        safetensors.numpy.save_file(tensors, str(directory / VECTORS_FILE))
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "w_dim": self.w_dim,
            "num_ws": self.num_ws,
            "generator": self.generator,
            "layer_groups": {k: list(v) for k, v in layer_groups(self.num_ws).items()},
            "directions": [d.to_json() for d in self.directions.values()],
            "normals": sorted(self.normals),
            "meta": self.meta,
        }
        (directory / DIRECTIONS_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DirectionSet:
        """Read a folder written by `save`; CheckpointError when it is missing or inconsistent."""
        import safetensors.numpy

        directory = Path(directory)
        doc_path, vec_path = directory / DIRECTIONS_FILE, directory / VECTORS_FILE
        if not doc_path.is_file() or not vec_path.is_file():
            raise CheckpointError(
                f"no face directions in {directory} (expected {DIRECTIONS_FILE} and {VECTORS_FILE}); "
                "fit them with `tryon face-directions --out DIR`"
            )
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
            tensors = safetensors.numpy.load_file(str(vec_path))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the face directions in {directory}: {exc}") from exc
        if doc.get("format") != FORMAT_NAME or doc.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{doc_path} is not a {FORMAT_NAME} v{FORMAT_VERSION} file")
        w_dim, num_ws = int(doc["w_dim"]), int(doc["num_ws"])
        directions: dict[str, Direction] = {}
        for entry in doc["directions"]:
            vector = tensors.get(f"direction.{entry['name']}")
            if vector is None or vector.shape != (w_dim,):
                raise CheckpointError(f"{vec_path}: direction {entry['name']!r} is missing or not [{w_dim}]")
            directions[entry["name"]] = Direction(
                name=entry["name"],
                vector=vector.astype(np.float32),
                scale=float(entry["scale"]),
                layers=(int(entry["layers"][0]), int(entry["layers"][1])),
                range=(float(entry["range"][0]), float(entry["range"][1])),
                kind=entry["kind"],
                unit=entry["unit"],
                description=entry["description"],
                attribute=entry.get("attribute"),
                sign=int(entry.get("sign", 1)),
                metrics=entry.get("metrics", {}),
            )
        normals = {}
        for name in doc.get("normals", []):
            vector = tensors.get(f"normal.{name}")
            if vector is None or vector.shape != (w_dim,):
                raise CheckpointError(f"{vec_path}: normal {name!r} is missing or not [{w_dim}]")
            normals[name] = vector.astype(np.float32)
        return cls(
            directions=directions,
            normals=normals,
            w_dim=w_dim,
            num_ws=num_ws,
            generator=dict(doc.get("generator") or {}),
            meta=dict(doc.get("meta") or {}),
            directory=directory,
        )


def generator_sha256(checkpoint_dir: str | os.PathLike[str], network: str = "G_ema") -> str | None:
    """sha256 of a checkpoint's generator weights as recorded in its config.json (None if absent)."""
    path = Path(checkpoint_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return str(config["networks"][network]["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------------------------------
# Editing math.


def conditional_direction(primal: np.ndarray, conditions: Sequence[np.ndarray]) -> np.ndarray:
    """`primal` [w_dim] projected onto the orthogonal complement of span(conditions), unit length.

    InterFaceGAN's conditional manipulation: moving along the result leaves every condition's
    linear score (w · n_c) unchanged, so those attributes stay put to first order. Like the paper,
    the result is renormalised, so one unit of strength moves the same W-distance (and so changes
    the primal attribute a little less than the unconditioned direction).
    """
    p = np.asarray(primal, dtype=np.float64)
    if not conditions:
        return (p / np.linalg.norm(p)).astype(np.float32)
    N = np.stack([np.asarray(c, dtype=np.float64) for c in conditions], axis=1)  # [w_dim, k]
    coef, *_ = np.linalg.lstsq(N, p, rcond=None)
    q = p - N @ coef
    norm = np.linalg.norm(q)
    if norm < 1e-3 * np.linalg.norm(p):
        raise InputError("the edit is (almost) the same direction as an attribute it should keep fixed")
    return (q / norm).astype(np.float32)


def apply_directions(
    ws: torch.Tensor,                                   # [N, num_ws, w_dim] or [num_ws, w_dim].
    steps: Iterable[tuple[np.ndarray, float, tuple[int, int]]],  # (unit vector, W-distance, (start, stop)).
) -> torch.Tensor:
    """ws with each step's `distance * vector` added to its ws range (a new tensor; edits stack)."""
    out = ws.clone()
    for vector, distance, (start, stop) in steps:
        delta = torch.as_tensor(vector, dtype=out.dtype, device=out.device) * float(distance)
        out[..., start:stop, :] += delta
    return out


# ----------------------------------------------------------------------------------------------------
# Fitting.


def fit_attribute_normal(
    w_train: np.ndarray,                # [N, w_dim] sampled w.
    score_train: np.ndarray,            # [N] the classifier's logit of the attribute on each render.
    w_val: np.ndarray,                  # [M, w_dim] held-out w.
    score_val: np.ndarray,              # [M] their logits.
    quantile: float = 0.25,             # Label the top / bottom `quantile` of scores 1 / 0 (InterFaceGAN's recipe).
    l2: float = 1e-3,                   # L2 penalty of the logistic regression (on standardised w).
) -> tuple[np.ndarray, dict[str, float]]:
    """Linear boundary in W separating high- from low-scoring samples -> (unit normal [w_dim], metrics).

    InterFaceGAN labels the most and least confident samples and fits a linear SVM; we fit an L2
    logistic regression (LBFGS, float64) on standardised w and map its weights back to W, so the
    normal is a direction in W itself (+ = higher score). Labelling by score quantiles rather than the
    classifier's own yes/no keeps rare attributes (bald, hat) fittable on generated faces.

    metrics: held-out accuracy on the val samples labelled with the train thresholds, the share of
    val samples in those classes, the Pearson correlation of w·n with the score over all val samples,
    and the std of w·n (one standard deviation of the population along the normal).
    """
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    lo, hi = np.quantile(score_train, [quantile, 1 - quantile])
    keep = (score_train <= lo) | (score_train >= hi)
    x = torch.from_numpy(np.asarray(w_train[keep], dtype=np.float64))
    y = torch.from_numpy((score_train[keep] >= hi).astype(np.float64))
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    xs = (x - mean) / std
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ weight + bias, y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    # w·(weight/std) + const is the same classifier on raw w: its normal in W is weight / std.
    normal = (weight.detach() / std).numpy()
    normal = normal / np.linalg.norm(normal)
    proj_val = np.asarray(w_val, dtype=np.float64) @ normal
    val_keep = (score_val <= lo) | (score_val >= hi)
    # Threshold of the projection: midpoint between the two train classes' means.
    proj_train = np.asarray(w_train, dtype=np.float64)[keep] @ normal
    yt = y.numpy().astype(bool)
    threshold = 0.5 * (proj_train[yt].mean() + proj_train[~yt].mean())
    pred = proj_val[val_keep] >= threshold
    truth = score_val[val_keep] >= hi
    accuracy = float((pred == truth).mean()) if val_keep.any() else float("nan")
    corr = float(np.corrcoef(proj_val, score_val)[0, 1]) if len(proj_val) > 2 else float("nan")
    metrics = {
        "val_accuracy": round(accuracy, 4),
        "val_labelled": int(val_keep.sum()),
        "val_correlation": round(corr, 4),
        "train_accuracy": round(float(((proj_train >= threshold) == yt).mean()), 4),
        "std_along_normal": round(float(np.concatenate([proj_train, proj_val]).std()), 5),
        "quantile": quantile,
    }
    return normal.astype(np.float32), metrics


def sefa_directions(
    G: torch.nn.Module,                 # A tryon Generator (its synthesis layers' style affines are read).
    layers: tuple[int, int],            # ws range (start, stop) whose layers to factorise.
    k: int = 8,                         # How many directions to return.
) -> tuple[np.ndarray, np.ndarray]:
    """SeFa: the top-k eigenvectors of AᵀA, A = the stacked style-affine weights of the layers driven
    by ws[start:stop] -> (directions [k, w_dim] unit rows, eigenvalues [k]), largest first.

    As in the official implementation, only the modulated convs count (not ToRGB) and each column
    of the stacked weight is normalised first. The
    sign of an eigenvector is arbitrary: fixed here so that its largest-magnitude entry is positive.
    """
    synthesis: Any = G.synthesis
    ranges = synthesis.block_ws_ranges()
    weights = []
    for res, (w_start, _) in ranges.items():
        block = getattr(synthesis, f"b{res}")
        convs = [getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name)]
        for j, conv in enumerate(convs):
            if layers[0] <= w_start + j < layers[1]:
                weights.append(conv.affine.weight.detach().to(torch.float64).cpu() * conv.affine.weight_gain)
    if not weights:
        raise InputError(f"no synthesis layer is driven by ws {layers[0]}..{layers[1] - 1}")
    A = torch.cat(weights, dim=0)                      # [sum of in_channels, w_dim]
    A = A / A.norm(dim=0, keepdim=True).clamp_min(1e-12)
    eigvals, eigvecs = torch.linalg.eigh(A.T @ A)      # Ascending.
    order = torch.argsort(eigvals, descending=True)[:k]
    vecs = eigvecs[:, order].T.numpy()
    vecs *= np.sign(vecs[np.arange(len(vecs)), np.abs(vecs).argmax(axis=1)])[:, None]
    return vecs.astype(np.float32), eigvals[order].numpy()


def pca_directions(w: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace: principal components of sampled w [N, w_dim] -> (components [k, w_dim], stds [k]),
    largest variance first; signs fixed like `sefa_directions`."""
    x = np.asarray(w, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:k]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    return comps.astype(np.float32), (s[:k] / math.sqrt(max(len(x) - 1, 1))).astype(np.float32)


def symmetry_axis(
    images: torch.Tensor,                   # float [N, C, H, W].
    max_shift: int | None = None,           # Largest shift tried, px (default W/4).
    rows: tuple[float, float] = (0.0, 1.0), # Band of rows compared, as fractions of H (e.g. the lower face).
) -> torch.Tensor:
    """Signed horizontal position of each image's left-right symmetry axis, px from the centre.

    The band of rows is compared with its mirror image shifted by d px; the
    shift d* that matches best (sub-pixel, parabolic refinement) puts the symmetry axis at d*/2 from
    the centre. On aligned faces (eyes fixed by the crop) a turned head moves its midline (nose,
    chin, face contour) sideways, so this is our yaw proxy: + = the midline moves to the image's right.
    """
    w = images.shape[-1]
    max_shift = max_shift or w // 4
    h = images.shape[-2]
    r0 = round(rows[0] * h)
    r1 = max(round(rows[1] * h), r0 + 1)
    gray = images[..., r0:r1, :].to(torch.float32).mean(dim=1)      # [N, rows, W]
    gray = gray - gray.mean(dim=(1, 2), keepdim=True)
    mirror = gray.flip(-1)
    shifts = list(range(-max_shift, max_shift + 1))
    errs = []
    for d in shifts:
        # Compare gray[x] with mirror[x - d] over the overlap.
        if d >= 0:
            a, b = gray[:, :, d:], mirror[:, :, : w - d]
        else:
            a, b = gray[:, :, : w + d], mirror[:, :, -d:]
        errs.append((a - b).square().mean(dim=(1, 2)))
    err = torch.stack(errs, dim=1)                                   # [N, shifts]
    best = err.argmin(dim=1)
    idx = best.clamp(1, len(shifts) - 2)
    e0 = err.gather(1, (idx - 1)[:, None])[:, 0]
    e1 = err.gather(1, idx[:, None])[:, 0]
    e2 = err.gather(1, (idx + 1)[:, None])[:, 0]
    denom = e0 - 2 * e1 + e2
    frac = torch.where(denom > 1e-12, 0.5 * (e0 - e2) / denom, torch.zeros_like(denom)).clamp(-1, 1)
    frac = torch.where(best == idx, frac, torch.zeros_like(frac))
    shift = torch.tensor(shifts, dtype=torch.float32)[best] + frac
    return shift / 2
