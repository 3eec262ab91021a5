"""How far the face edits move what the attribute classifier sees on real faces, and what was tried
to move them further (issue 16's goal: on projected real photos, smile +1 raises P(smiling) by >= 0.3,
glasses +1 P(glasses) by >= 0.3, age +10 lowers P(young) clearly, the other attributes move < 0.1).

Faces: the LFW photos of bench_tryon's identity section (the first N/2 women and N/2 men), projected
with the encoder + `--steps` (the same cache folder: run bench_tryon's identity section first, or
this script projects them). Each edit is measured two ways, by the attribute classifier
(tryon/assets/face_features):

- `generator`: P on the generator's rendering of the edited latent minus P on its reconstruction;
- `photo`: P on the aligned photo with the generator's change applied (tryon.composite.photo_edit,
  what a try-on shows) minus P on the photo.

Variants: the shipped directions at +1 and at the top of their range (+1.5), and past it (x2, x3:
what a calibrated step, "+1 = the goal change", would have to be); the generator's change amplified
(x2, x3) before it is applied to the photo; the shipped direction on one layer range only (coarse,
middle, middle+fine, coarse+middle); glasses made conditional on Male (InterFaceGAN, `keep`); the
projected latent with the G's constant noise, or collapsed to W (the mean of its ws), to see whether
the projection's noise or W+ spread blocks the edit; and directions fitted on real faces:
mean-difference directions between CelebA faces with and without the attribute (their own labels),
encoded by the face encoder (`--celeba` faces), averaged over the layers of a range, on all layers
or on coarse+middle, one unit = 2 std of those faces along it.

    python benchmarks/bench_edit_reach.py [--lfw 40] [--celeba 1500]

Writes benchmarks/results/bench_edit_reach.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tryon import DATA, RESULTS, attribute_probs, encode_celeba, lfw_photos, projected_photos

EDITS = (("smile", 1.0, "Smiling", 1), ("glasses", 1.0, "Eyeglasses", 1), ("age", 10.0, "Young", -1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=int, default=24)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--celeba", type=int, default=1500, help="CelebA faces encoded to fit real-face directions")
    parser.add_argument("--cache", default="/tmp/bench_tryon_latents")
    parser.add_argument("--out", default=str(RESULTS / "bench_edit_reach.json"))
    args = parser.parse_args()
    import torch
    from PIL import Image

    from tryon.composite.photo_edit import apply_edit_to_photo
    from tryon.face import edit_latent, load_face_models, render_face
    from tryon.face.directions import conditional_direction
    from tryon.face.edits import face_directions
    from tryon.face.latent import FaceLatent

    torch.set_num_threads(1)
    started = time.perf_counter()
    fm = load_face_models(None)
    faces: list[tuple[Image.Image, FaceLatent]] = projected_photos(
        fm, (path for path, _ in lfw_photos(args.lfw)), Path(args.cache), args.steps
    )
    print(f"{len(faces)} LFW faces", flush=True)

    # Real-face directions: CelebA faces (the last ids), aligned like ours, encoded.
    names = (DATA / "faces_celeba" / "list_attr_celeba.txt").read_text().splitlines()[1].split()
    ws_celeba, y_all = encode_celeba(fm, args.celeba)
    X = ws_celeba.numpy().reshape(len(ws_celeba), -1)

    def measure(target: str, vector: np.ndarray | None = None, strengths: dict[str, float] | None = None,
                gain: float = 1.0, latent_as: str = "projected") -> dict[str, float]:
        """Mean change of P(target) (and of the others) for an edit by `strengths` or by a W+ `vector`
        [num_ws, w_dim] added to the latent."""
        gen, pho, others = [], [], []
        for crop, projected in faces:
            latent = projected
            if latent_as == "const noise":
                latent = projected.replace(noise=None)
            elif latent_as == "W":
                latent = projected.replace(ws=np.repeat(projected.ws.mean(0, keepdims=True), len(projected.ws), 0),
                                           noise=None)
            recon = render_face(fm, latent)
            if vector is not None:
                moved = latent.replace(ws=(latent.ws + vector).astype(np.float32))
            else:
                moved = edit_latent(fm, latent, strengths)
            edited = render_face(fm, moved)
            if gain != 1.0:
                r, e = np.asarray(recon, np.float32), np.asarray(edited, np.float32)
                edited = Image.fromarray(np.clip(r + gain * (e - r), 0, 255).astype(np.uint8))
            out = apply_edit_to_photo(crop, recon, edited).image
            p = attribute_probs(fm, [recon, edited, crop, out])
            gen.append(p[target][1] - p[target][0])
            pho.append(p[target][3] - p[target][2])
            others.append(np.mean([abs(p[a][3] - p[a][2]) for a in p if a != target]))
        return {"generator_dP": float(np.mean(gen)), "photo_dP": float(np.mean(pho)),
                "photo_others_abs_dP": float(np.mean(others))}

    dset = face_directions(fm)
    groups = {"all": (0, dset.num_ws), "coarse": (0, 3), "middle": (3, 7), "middle+fine": (3, dset.num_ws),
              "coarse+middle": (0, 7)}

    def along(v: np.ndarray, layers: tuple[int, int], distance: float) -> np.ndarray:
        out = np.zeros((dset.num_ws, dset.w_dim))
        out[layers[0]:layers[1]] = distance * v / np.linalg.norm(v)
        return out

    results: dict[str, dict[str, float]] = {}
    for name, unit, target, sign in EDITS:
        d = dset.directions[name]
        one = unit * d.scale                                    # W-distance of "+1".
        for k in (1.0, 1.5):
            results[f"{name} {k:+g} (shipped)"] = measure(target, strengths={name: unit * k})
        for k in (2.0, 3.0):
            results[f"{name} x{k:g} (shipped, past its range)"] = measure(target, along(d.vector, d.layers, k * one))
        for gain in (2.0, 3.0):
            results[f"{name} +1 (shipped), change x{gain:g}"] = measure(target, strengths={name: unit}, gain=gain)
        for group in ("coarse", "middle", "middle+fine", "coarse+middle"):
            results[f"{name} x2 (shipped, {group} only)"] = measure(target, along(d.vector, groups[group], 2 * one))
        for how in ("const noise", "W"):
            results[f"{name} x2 (shipped, latent with {how})"] = measure(
                target, along(d.vector, d.layers, 2 * one), latent_as=how)
        if name == "glasses":
            cond = conditional_direction(d.vector, [dset.normals["Male"]])
            for k in (2.0, 3.0):
                key = f"{name} x{k:g} (shipped, conditional on Male)"
                results[key] = measure(target, along(cond, d.layers, k * one))
        has = y_all[:, names.index(target)] > 0
        diff = (X[has].mean(0) - X[~has].mean(0)).reshape(dset.num_ws, dset.w_dim) * sign
        for group in ("all", "coarse+middle"):
            a, b = groups[group]
            v = diff[a:b].mean(0)
            v = v / np.linalg.norm(v)
            step = 2 * float((X.reshape(len(X), dset.num_ws, dset.w_dim)[:, a:b] @ v).mean(1).std())
            for k in (1.0, 2.0, 3.0):
                results[f"{name} {k:+g} (real-face direction, {group})"] = measure(target, along(v, (a, b), k * step))
        for key in [k for k in results if k.startswith(name)]:
            r = results[key]
            print(f"{key:<52} generator dP {r['generator_dP']:+.3f}  photo dP {r['photo_dP']:+.3f}  "
                  f"others {r['photo_others_abs_dP']:.3f}", flush=True)
    report = {"benchmark": "bench_edit_reach", "lfw_faces": len(faces), "celeba_faces": len(X),
              "project_steps": args.steps, "results": results,
              "calibration": {n: dset.directions[n].metrics.get("calibration") for n, *_ in EDITS},
              "seconds_total": time.perf_counter() - started,
              "note": "dP: mean change of P(attribute) by the attribute classifier (age: P(Young), which should drop)"}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
