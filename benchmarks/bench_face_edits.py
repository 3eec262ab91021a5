"""Edit quality of the shipped face directions (issue 3, "Measured: edit quality").

For every named direction (and a few conditional edits, `keep=`), on two sets of faces:

- `projected`: real aligned faces from ../shared/data/faces_lfw and face_photos (the photos of
  bench_face.py's projection section), projected with `project_face` (encoder + `--steps`
  optimisation steps), i.e. what users edit;
- `samples`: faces sampled from the generator (held-out seeds), what the directions were fitted on;

each face is rendered at −1 and +1 step (age: ±10, the others ±1) and measured with the attribute
classifier (tryon/assets/face_features); on generated faces the attribute edits are also measured
on all layers ("NAME @ all") against their default layers:

    target    change of the direction's own attribute logit per step (as named: age + = less Young)
    others    mean |change| of the other named attributes' logits per step (leakage)
    ratio     target / others (higher = more disentangled)
    drift     identity drift: classifier-feature distance of the +1-step edit to the unedited face,
              and the same divided by the mean distance between two different faces of the set
    axis      left-right symmetry-axis shift of the lower face, px per step (the yaw proxy)
    yaw °     (pose) head yaw change from mediapipe's face mesh, degrees per step (nan: no faces found)
    ms        milliseconds per edit + render of one face (edit_latent + render_face)

    python benchmarks/bench_face.py --sections edits        # as a section of the face benchmarks
    python benchmarks/bench_face_edits.py [--lfw 8] [--samples 48] [--steps 50]   # alone

`edits_section(models, aligned)` is the section; alone, this script writes
benchmarks/results/bench_face_edits.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.face_directions import classify, edit_response, render_ws, sample_ws  # noqa: E402
from tryon.face import EDIT_NAMES, FaceLatent, edit_latent, render_face  # noqa: E402
from tryon.face.edits import face_directions  # noqa: E402
from tryon.face.models import FaceModels, load_face_models  # noqa: E402

CONDITIONAL = (("age", ("gender",)), ("gender", ("age",)), ("smile", ("gender", "age")), ("glasses", ("age",)))


def projected_faces(models: FaceModels, aligned: list[tuple[str, Any]], steps: int) -> tuple[torch.Tensor, float]:
    """Project aligned faces [(name, PIL image)] -> (ws [N, num_ws, w_dim], mean seconds per projection)."""
    from tryon.face.project import project_face

    ws, seconds = [], []
    for _, image in aligned:
        t0 = time.perf_counter()
        ws.append(torch.from_numpy(project_face(models, image, steps=steps).latent.ws))
        seconds.append(time.perf_counter() - t0)
    if not ws:
        return torch.zeros([0, models.num_ws, models.w_dim]), 0.0
    return torch.stack(ws), float(np.mean(seconds))


def measure_set(models: FaceModels, ws: torch.Tensor, ablation: bool = False) -> dict[str, dict[str, float]]:
    """Per direction (and conditional edit): target / others / ratio / drift / axis on faces `ws`;
    `ablation`: also every attribute direction on all layers (rows "NAME @ all") and pose on all layers."""
    dset = face_directions(models)
    imgs = render_ws(models, ws)
    feats, scores = classify(models, imgs)
    perm = torch.roll(torch.arange(len(feats)), 1)
    between = float((feats - feats[perm]).norm(dim=1).mean()) if len(feats) > 1 else float("nan")
    rows: dict[str, dict[str, float]] = {}
    jobs: list[tuple[str, str, tuple[str, ...], str | None]] = [
        (n, n, (), None) for n in EDIT_NAMES if n in dset.directions
    ]
    jobs += [(f"{n} | keep {'+'.join(k)}", n, k, None) for n, k in CONDITIONAL if n in dset.directions]
    if ablation:
        jobs += [(f"{n} @ all", n, (), "all") for n in EDIT_NAMES
                 if n in dset.directions and dset.directions[n].layers != (0, dset.num_ws)]
    for label, name, keep, layers in jobs:
        r = edit_response(models, dset, ws, name, base=(imgs, feats, scores), keep=keep, layers=layers,
                          yaw=name == "pose")
        target = r.get("target_per_unit", float("nan"))
        rows[label] = {
            "target": target,
            "others": r["others_per_unit"],
            "ratio": abs(target) / r["others_per_unit"] if r["others_per_unit"] > 0 else float("nan"),
            "drift": r["identity_drift"],
            "drift_rel": r["identity_drift"] / between if between > 0 else float("nan"),
            "axis": r["axis_px_per_unit"],
            **({"yaw": r["yaw_deg_per_unit"], "yaw_found": r["yaw_found"]} if "yaw_deg_per_unit" in r else {}),
        }
    # The kept attribute's own change under a conditional edit (should be ~0).
    cols = {d.name: d for d in dset.directions.values() if d.kind == "attribute"}
    for name, keep in CONDITIONAL:
        if name not in dset.directions:
            continue
        for k in keep:
            if k in cols:
                plain = _kept_change(models, dset, ws, name, (), k, scores)
                cond = _kept_change(models, dset, ws, name, keep, k, scores)
                rows[f"{name} | keep {'+'.join(keep)}"][f"{k}_change_plain"] = plain
                rows[f"{name} | keep {'+'.join(keep)}"][f"{k}_change_kept"] = cond
    rows["_between_faces"] = {"feature_distance": between}
    return rows


def _kept_change(models: FaceModels, dset: Any, ws: torch.Tensor, name: str, keep: tuple[str, ...], kept: str,
                 base_scores: torch.Tensor) -> float:
    """Mean |change| of the `kept` attribute's logit under a +1-step edit of `name`."""
    from training.face_directions import attribute_columns
    from tryon.face.edits import edit_ws
    from tryon.face.instructions import DEFAULT_STEPS

    col = attribute_columns(models)[dset.directions[kept].attribute]
    edited = edit_ws(dset, ws, {name: DEFAULT_STEPS.get(name, 1.0)}, keep)
    _, scores = classify(models, render_ws(models, edited))
    return float((scores[:, col] - base_scores[:, col]).abs().mean())


def edit_speed(models: FaceModels, ws: torch.Tensor, repeats: int = 20) -> float:
    """Milliseconds per edit_latent + render_face of one face (3 stacked edits)."""
    latent = FaceLatent(ws=ws[0].numpy())
    edit_latent(models, latent, {"age": 5, "smile": 0.5, "pose": 0.5})  # Warm-up (loads the directions).
    t0 = time.perf_counter()
    for _ in range(repeats):
        render_face(models, edit_latent(models, latent, {"age": 5, "smile": 0.5, "pose": 0.5}))
    return (time.perf_counter() - t0) / repeats * 1000


def edits_section(models: FaceModels, aligned: list[tuple[str, Any]], *, num_samples: int = 48, steps: int = 50,
                  seed: int = 12345, ablation: bool = True) -> dict[str, Any]:
    """The edits section of bench_face.py: {"projected": rows, "samples": rows, "ms_per_edit", ...}
    for the aligned real faces [(name, PIL image)] (projected with `steps` steps) and `num_samples`
    generated faces; prints the tables."""
    out: dict[str, Any] = {"unit": "per step: age 10 units, the others 1 unit"}
    ws_proj, proj_seconds = projected_faces(models, aligned, steps)
    if len(ws_proj):
        out["projected"] = measure_set(models, ws_proj)
        out["projected_faces"] = [name for name, _ in aligned]
        out["projection_steps"] = steps
        out["projection_seconds"] = round(proj_seconds, 2)
        print_table(f"projected real faces ({len(ws_proj)}, encoder + {steps} steps, {proj_seconds:.1f} s each)",
                    out["projected"])
    else:
        print("\nno real faces to project (the shared data folder is absent)")
    ws_samples = sample_ws(models, num_samples, seed)
    out["samples"] = measure_set(models, ws_samples, ablation=ablation)
    print_table(f"generated faces ({num_samples})", out["samples"])
    out["ms_per_edit"] = round(edit_speed(models, ws_samples), 2)
    print(f"\nedit + render: {out['ms_per_edit']:.1f} ms per face (3 stacked edits)")
    dset = face_directions(models)
    out["directions"] = {"directory": str(dset.directory), "generator": dset.generator}
    return json_safe(out)


def json_safe(value: Any) -> Any:
    """NaN / infinity -> None, numbers rounded to 4 decimals, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if np.isfinite(value) else None
    return value


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}  (per step: age 10 units, others 1; two faces are "
          f"{rows['_between_faces']['feature_distance']:.2f} apart in feature space)")
    print(f"{'edit':<28} {'target':>7} {'others':>7} {'ratio':>6} {'drift':>6} {'drift/2f':>8} {'axis px':>8} "
          f"{'yaw °':>6}  kept")
    for label, r in rows.items():
        if label.startswith("_"):
            continue
        kept = "  ".join(f"{k[:-13]} {r[k]:.3f}→{r[k[:-13] + '_change_kept']:.3f}"
                         for k in r if k.endswith("_change_plain"))
        print(f"{label:<28} {_f(r['target']):>7} {_f(r['others']):>7} {_f(r['ratio'], 2):>6} {_f(r['drift']):>6} "
              f"{_f(r['drift_rel']):>8} {_f(r['axis']):>8} {_f(r.get('yaw'), 2):>6}  {kept}")


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def main() -> int:
    from bench_face import FACE_PHOTOS, SHARED_DATA, align_photos, lfw_sample

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=int, default=8, help="LFW photos to project (one per identity, spread out)")
    parser.add_argument("--face-photos", type=int, default=len(FACE_PHOTOS), help="face_photos photos to project")
    parser.add_argument("--samples", type=int, default=48, help="generated faces")
    parser.add_argument("--steps", type=int, default=50, help="projection steps after the encoder")
    parser.add_argument("--checkpoint", help="face checkpoint (default: the shipped one)")
    parser.add_argument("--no-ablation", action="store_true", help="skip the all-layers rows on generated faces")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=str(RESULTS / "bench_face_edits.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = load_face_models(args.checkpoint)
    photos = lfw_sample(args.lfw) + [SHARED_DATA / "face_photos" / n for n in FACE_PHOTOS[: args.face_photos]]
    aligned, skipped = align_photos([p for p in photos if p.is_file()])
    t0 = time.perf_counter()
    result = edits_section(models, aligned, num_samples=args.samples, steps=args.steps,
                           ablation=not args.no_ablation)
    doc = {
        "benchmark": "bench_face_edits",
        "seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "skipped_photos": skipped,
        **result,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
