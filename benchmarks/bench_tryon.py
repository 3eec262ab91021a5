"""Face compositing and try-on: how well the pasted face lines up, how visible its seam is, how well its
colour matches, and how long each step takes — on real try-on photos and on generated models.

Faces pasted: real faces aligned by `align_face` from ../shared/data/face_photos (the compositor does
not care where an aligned face comes from; the shipped 64² face G renders colour blobs that the face
mesh cannot read, so they cannot be scored by landmarks — they are timed and shown, not scored).
Models: every photo of ../shared/data/tryon_examples/{ootd_model,idm_human} (768×1024; those without a
head must be refused), and on-model outfits of the shipped fashion G (64², upscaled to 512², where the
mesh never finds a face and the canonical head position of the pose-normalized frame is used).

Per composite and blend mode (laplacian = ours, poisson, alpha = feathered mask only, paste = naive
hard paste without colour matching):
- landmark error: the face mesh re-run on the composite; mean distance (px, and in eye distances) of
  its eye centres and mouth corners from where the compositor aimed the face's (median and 90th
  percentile over the composites where the mesh finds the face; "found" = the share where it does:
  a face found more than an eye distance from the aimed place counts as not found);
- seam: mean squared luminance gradient on a thin band along the mask's 0.5 contour, divided by the
  same band in the untouched model image ("excess": 1 = as smooth as the photo) and by the face's
  interior ("ratio");
- colour: CIE76 delta E between the mean Lab of the pasted face's inner skin and the model's own face
  there (before = the face as rendered, after = the composite);
- seconds per step (upscale, locate, face landmarks, warp, mask, colour, blend), and for the whole
  `try_on` with the shipped models: projection (N steps), render, outfit generation, composite.

Identity (`--sections identity`): does the shopper see their own face? LFW photos
(../shared/data/faces_lfw, genders from lfw_labels.csv; the first N/2 women and N/2 men, one photo a
person) are projected (encoder + `--project-steps`, kept in `--cache`) and put onto real model photos
of the same gender (four each, round robin; `--models-per-face` more), with no edit and with smile +1,
glasses +1, age +10 (one unit each), two ways in one run:

- `generator`: the face generator's 64² rendering pasted (the try-on before the high-fidelity path);
- `photo`: the aligned photo at its own resolution, the generator's change applied (tryon.composite.
  photo_edit), pasted.

Per try-on: the identity distance of dlib's face-recognition ResNet (`eval` extra: dlib-bin +
face-recognition-models; < 0.6 = the same person) from the LFW photo to the face in the composite,
and the share recognised; the face's size in the composite (eye distance and face-mask height, px);
the attribute classifier's (tryon/assets/face_features) P(attribute) on the pasted face against the
unedited one (target change, and mean |change| of the other named attributes); seconds per try-on
with a cached projection (`TryOnPipeline.try_on_latent`: edit, render, photo edit, composite).

    python benchmarks/bench_tryon.py                    # all sections: all photos, 3 faces, 16 generated models, 40 LFW
    python benchmarks/bench_tryon.py --quick            # 6 photos, 2 faces, 4 generated models, 8 LFW
    python benchmarks/bench_tryon.py --sections identity --lfw 40

Prints tables, writes benchmarks/results/bench_tryon.json (`--sections identity` alone:
bench_tryon_identity.json) and small images benchmarks/results/tryon_{real,generated,render,identity}.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"
FACES = ("biden.jpg", "obama.jpg", "alex-lacamoire.png")
BLENDS = ("laplacian", "poisson", "alpha", "paste")
OUTFITS = (("tops", "Women"), ("tops", "Men"), ("outerwear", "Women"), ("bottoms", "Men"))
# Real model photos with a usable, front-facing face, by gender (tryon_examples/<folder>/<name>).
MODEL_PHOTOS = {
    "Women": ("idm_human/00034_00.jpg", "ootd_model/01861_00.jpg", "ootd_model/model_1.png", "ootd_model/model_3.png"),
    "Men": ("ootd_model/model_5.png", "ootd_model/model_6.png", "ootd_model/model_7.png", "idm_human/sam1.jpg"),
}
IDENTITY_EDITS: tuple[tuple[str, dict[str, float]], ...] = (
    ("none", {}), ("smile +1", {"smile": 1.0}), ("glasses +1", {"glasses": 1.0}), ("age +10", {"age": 10.0}),
)
EDIT_TARGETS = {"smile +1": "Smiling", "glasses +1": "Eyeglasses", "age +10": "Young"}
NAMED_ATTRIBUTES = ("Young", "Male", "Smiling", "Eyeglasses", "Blond_Hair", "Bald", "Mustache", "No_Beard",
                    "Wearing_Hat", "Heavy_Makeup")
SAME_PERSON = 0.6       # dlib's threshold for the same person.


def aligned_faces(names: tuple[str, ...]) -> dict[str, Image.Image]:
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    return {n: align_face(load_image(DATA / "face_photos" / n), 256)[0].image for n in names}


def model_photos(quick: bool) -> list[Path]:
    files = sorted((DATA / "tryon_examples" / "ootd_model").iterdir()) + sorted(
        (DATA / "tryon_examples" / "idm_human").iterdir()
    )
    files = [f for f in files if f.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return files[::6] if quick else files


def score(result: Any, model: Image.Image) -> dict[str, float]:
    """Landmark error, seam and colour numbers of one CompositeResult (see the module docstring)."""
    import cv2

    from tryon.composite import mesh_keypoints, seam_metrics
    from tryon.composite.blend import to_lab
    from tryon.face.align import find_faces

    out = np.asarray(result.image)
    ref = np.asarray(model.convert("RGB").resize(result.image.size, Image.Resampling.LANCZOS))
    mask = np.asarray(result.mask, dtype=np.float32) / 255.0
    row: dict[str, float] = {}
    target = result.target_keypoints
    eye_dist = float(np.hypot(*(target[1] - target[0])))
    found = find_faces(result.image)
    if found:
        # The composite's face nearest the aimed eyes (a photo may hold another face).
        best = min(found, key=lambda f: float(np.hypot(*(mesh_keypoints(f[1])[:2].mean(0) - target[:2].mean(0)))))
        kp = mesh_keypoints(best[1])
        err = np.hypot(*(kp[:4] - target[:4]).T)
        found = found if float(np.hypot(*(kp[:2].mean(0) - target[:2].mean(0)))) < eye_dist else []
    if found:  # A face found more than an eye distance away is another face (or a misreading).
        row["landmark_px"] = float(err.mean())
        row["landmark_rel"] = float(err.mean() / eye_dist)
    else:
        row["landmark_px"] = row["landmark_rel"] = float("nan")
    row["found"] = float(bool(found))
    seam = seam_metrics(out, mask, reference=ref)
    row["seam_excess"], row["seam_ratio"] = seam["excess"], seam["ratio"]
    inner = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    if inner.sum() > 50:
        lab_out = to_lab(out.astype(np.float32) / 255.0)[inner].mean(0)
        lab_ref = to_lab(ref.astype(np.float32) / 255.0)[inner].mean(0)
        row["delta_e"] = float(np.linalg.norm(lab_out - lab_ref))
    else:
        row["delta_e"] = float("nan")
    return row


def summarise(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if k in r], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[k] = (float(np.mean(v)) if k == "found" else float(np.median(v))) if len(v) else float("nan")
        if k == "landmark_px" and len(v):
            out["landmark_px_p90"] = float(np.percentile(v, 90))
    out["n"] = float(len(rows))
    return out


def crop_panel(result: Any, size: int = 192) -> Image.Image:
    x0, y0, x1, y1 = result.metrics["crop"]
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    return result.image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def labelled(panels: list[tuple[str, Image.Image]], size: int = 192) -> Image.Image:
    sheet = Image.new("RGB", (size * len(panels), size + 14), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(panels):
        sheet.paste(im.resize((size, size)), (i * size, 14))
        draw.text((i * size + 3, 1), label, fill=(0, 0, 0))
    return sheet


def save_small(image: Image.Image, path: Path) -> None:
    """A 256-colour PNG (a few hundred KB at most): enough to look at, small enough to commit."""
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def bench_real(faces: dict[str, Image.Image], quick: bool) -> tuple[dict[str, Any], list[Image.Image]]:
    from tryon.composite import NoUsableFaceError, composite_face
    from tryon.vision.io import load_image

    rows: dict[str, list[dict[str, Any]]] = {b: [] for b in BLENDS}
    timings: list[dict[str, float]] = []
    refused: list[str] = []
    sheets: list[Image.Image] = []
    for path in model_photos(quick):
        model = load_image(path)
        for fi, (fname, face) in enumerate(faces.items()):
            panels: list[tuple[str, Image.Image]] = []
            try:
                for blend in BLENDS:
                    r = composite_face(face, model, blend=blend)  # type: ignore[arg-type]
                    rows[blend].append({"model": path.name, "face": fname, **score(r, model)})
                    if blend == "laplacian":
                        timings.append(r.timings)
                    if blend in ("paste", "laplacian", "poisson"):
                        panels.append((blend, crop_panel(r)))
            except NoUsableFaceError as exc:
                if fi == 0:
                    refused.append(f"{path.name}: {exc}")
                break
            if path.name in ("model_1.png", "00034_00.jpg", "01861_00.jpg") and fi == 0 and len(sheets) < 2:
                orig = composite_face(face, model, blend="laplacian")
                x0, y0, x1, y1 = orig.metrics["crop"]
                side = max(x1 - x0, y1 - y0)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
                sheets.append(labelled([("model", model.crop(box)), ("face", face), *panels]))
        print(f"  {path.name}: {'refused' if refused and refused[-1].startswith(path.name) else 'ok'}", flush=True)
    keys = ("landmark_px", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    out = {
        "by_blend": {b: summarise(rows[b], keys) for b in BLENDS},
        "refused": refused,
        "seconds": {k: float(np.median([t[k] for t in timings])) for k in timings[0]} if timings else {},
        "photos": len(model_photos(quick)),
    }
    return out, sheets


def bench_generated(faces: dict[str, Image.Image], quick: bool) -> tuple[dict[str, Any], Image.Image]:
    from tryon.composite import composite_face
    from tryon.fashion import FashionPipeline

    pipe = FashionPipeline.from_checkpoint(None)
    seeds = [0] if quick else [0, 1, 2, 3]
    rows: dict[str, list[dict[str, Any]]] = {b: [] for b in BLENDS}
    timings: list[dict[str, float]] = []
    gen_seconds: list[float] = []
    located: list[str] = []
    panels: list[tuple[str, Image.Image]] = []
    face_items = list(faces.items())
    for ci, (category, gender) in enumerate(OUTFITS):
        t0 = time.perf_counter()
        outs = pipe.generate_outfit(category=category, gender=gender, view="on_model", seeds=seeds, truncation=0.7)
        gen_seconds.append((time.perf_counter() - t0) / len(seeds))
        for oi, outfit in enumerate(outs):
            fname, face = face_items[(ci + oi) % len(face_items)]
            for blend in BLENDS:
                r = composite_face(face, outfit.image, generated=True, blend=blend)  # type: ignore[arg-type]
                located.append(r.located)
                name = f"{category}/{gender}/{outfit.seed}"
                rows[blend].append({"outfit": name, "face": fname, **score(r, outfit.image)})
                if blend == "laplacian":
                    timings.append(r.timings)
                    if oi == 0 and len(panels) < 6:
                        panels += [(f"{category}/{gender}", outfit.image.resize((512, 512))), ("laplacian", r.image)]
    keys = ("landmark_px", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    out = {
        "by_blend": {b: summarise(rows[b], keys) for b in BLENDS},
        "located": {k: located.count(k) for k in sorted(set(located))},
        "seconds": {k: float(np.median([t[k] for t in timings])) for k in timings[0]},
        "generate_seconds_per_outfit": float(np.median(gen_seconds)),
        "models": len(rows["laplacian"]),
    }
    return out, labelled(panels, 160)


def bench_pipeline(project_steps: int) -> tuple[dict[str, Any], Image.Image]:
    """The whole try_on with the shipped models: a photo projected, rendered, composited twice."""
    from tryon.pipelines import TryOnPipeline
    from tryon.vision.io import load_image

    pipe = TryOnPipeline(project_steps=project_steps)
    photo = load_image(DATA / "face_photos" / "obama.jpg")
    model = load_image(DATA / "tryon_examples" / "idm_human" / "00035_00.jpg")
    t0 = time.perf_counter()
    first = pipe.try_on(photo, {"category": "tops", "colour": "blue", "gender": "Women", "seed": 1})
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = pipe.try_on(photo, model)
    warm = time.perf_counter() - t0
    out = {
        "project_steps": project_steps,
        "first_call": {k: round(v, 4) for k, v in first.timings.items()} | {"wall": cold},
        "second_call_real_model": {k: round(v, 4) for k, v in second.timings.items()} | {"wall": warm},
        "cached": second.cached,
        "located": [first.composite.located, second.composite.located],
    }
    sheet = labelled(
        [
            ("rendered face", first.face.resize((192, 192), Image.Resampling.NEAREST)),
            ("generated model", crop_panel(first.composite)),
            ("real photo", crop_panel(second.composite)),
        ]
    )
    return out, sheet


# ----------------------------------------------------------------------------------------------------
# Identity: does the shopper see their own face?


class Recogniser:
    """dlib's face detector, 68-point shape predictor and face-recognition ResNet (the `eval` extra)."""

    def __init__(self) -> None:
        import importlib.util

        spec = importlib.util.find_spec("face_recognition_models")
        try:
            import dlib
        except ImportError as exc:
            spec = None
            why = str(exc)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("the identity section needs the eval extra (pip install 'tryon[eval]': dlib-bin, "
                             f"face-recognition-models){': ' + why if spec is None and 'why' in locals() else ''}")
        # Not imported: its __init__ needs pkg_resources (gone from recent setuptools); the weights are
        # plain files in the package.
        models = Path(next(iter(spec.submodule_search_locations))) / "models"
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.dlib = dlib

    def descriptor(self, image: Image.Image, keypoints: np.ndarray | None = None) -> tuple[np.ndarray | None, str]:
        """128-d descriptor of the face nearest `keypoints` ([5, 2] eyes, mouth corners, nose; None =
        the largest), and how it was boxed ("detector", "keypoints" or "none")."""
        rgb = np.asarray(image.convert("RGB"))
        offset = np.zeros(2)
        scale = 1.0
        if keypoints is not None:  # Work in a crop around the face, enlarged so dlib's detector sees it.
            eye = float(np.hypot(*(keypoints[1] - keypoints[0])))
            c = keypoints.mean(axis=0)
            half = 2.5 * eye
            x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
            x1, y1 = int(min(rgb.shape[1], c[0] + half)), int(min(rgb.shape[0], c[1] + half))
            scale = max(1.0, 60.0 / max(eye, 1.0))
            crop = Image.fromarray(rgb[y0:y1, x0:x1]).resize(
                (round((x1 - x0) * scale), round((y1 - y0) * scale)), Image.Resampling.BICUBIC)
            rgb, offset = np.asarray(crop), np.array([x0, y0], dtype=np.float64)
        dets = list(self.detector(rgb, 1))
        how = "detector"
        if keypoints is not None:
            kp = (keypoints - offset) * scale
            centre = kp.mean(axis=0)
            dets = [d for d in dets if abs((d.left() + d.right()) / 2 - centre[0]) < (d.right() - d.left()) / 2
                    and abs((d.top() + d.bottom()) / 2 - centre[1]) < (d.bottom() - d.top()) / 2]
            if not dets:  # dlib's box of a frontal face: about 2.2 eye distances wide, centred below the eyes.
                eye = float(np.hypot(*(kp[1] - kp[0])))
                cx, cy = centre[0], centre[1] + 0.1 * eye
                half = 1.1 * eye
                dets = [self.dlib.rectangle(int(cx - half), int(cy - half), int(cx + half), int(cy + half))]
                how = "keypoints"
        if not dets:
            return None, "none"
        det = max(dets, key=lambda d: d.area())
        shape = self.shape(rgb, det)
        return np.asarray(self.net.compute_face_descriptor(rgb, shape)), how


def latent_cache(fm: Any, cache: Path) -> Path:
    """The folder of `cache` for this face generator's projections: a new generator, or one whose
    encoder is not fitted yet, never reads another's latents."""
    folder = cache / (fm.generator_sha256[:12] + ("" if fm.encoder is not None else "-no-encoder"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_projection(fm: Any, aligned: Image.Image, name: str, steps: int, cache: Path) -> tuple[Any, float | None]:
    """The projection (encoder + `steps`) of an aligned face, kept in `latent_cache(fm, cache)` under
    `name`: (latent, seconds it took, or None when it came from the cache)."""
    from tryon.face.latent import FaceLatent
    from tryon.face.project import project_face

    file = latent_cache(fm, cache) / f"{name}_s{steps}.npz"
    if file.is_file():
        return FaceLatent.load(file), None
    t0 = time.perf_counter()
    latent = project_face(fm, aligned, steps=steps).latent
    seconds = time.perf_counter() - t0
    latent.save(file)
    return latent, seconds


def projected_photos(fm: Any, paths: Iterable[Path], cache: Path, steps: int) -> list[tuple[Any, Any]]:
    """(the photo's aligned crop at its own resolution, its projection) for each photo with a face; the
    projections are cached (`cached_projection`), so reruns skip them."""
    from tryon.face.align import align_face, photo_res, realign
    from tryon.vision.io import load_image

    faces = []
    for path in paths:
        photo = load_image(path)
        try:
            aligned = align_face(photo, 256)[0]
        except Exception:
            continue
        latent, _ = cached_projection(fm, aligned.image, path.stem, steps, cache)
        faces.append((realign(photo, aligned, photo_res(aligned)), latent))
    return faces


def encode_celeba(fm: Any, n: int) -> tuple[Any, np.ndarray]:
    """The last n CelebA faces of the attribute list (never an evaluation face), aligned like ours and
    encoded by the face encoder: W+ [m, num_ws, w_dim] and their CelebA labels [m, 40] (+1 / -1), m <= n
    (faces the alignment misses are skipped)."""
    import torch

    from tryon.face.align import align_face
    from tryon.face.models import face_tensor
    from tryon.vision.io import load_image

    if fm.encoder is None:
        raise SystemExit("the face generator has no encoder: fit one first (tryon face-encoder)")
    root = DATA / "faces_celeba"
    ws, labels = [], []
    for row in (line.split() for line in (root / "list_attr_celeba.txt").read_text().splitlines()[2:][-n:]):
        try:
            aligned = align_face(load_image(root / "images" / row[0]), 64)[0]
        except Exception:
            continue
        with torch.no_grad():
            ws.append(fm.encoder(face_tensor(fm, aligned.image))[0])
        labels.append([int(v) for v in row[1:]])
    print(f"{len(ws)} CelebA faces encoded", flush=True)
    return torch.stack(ws), np.array(labels)


def lfw_photos(n: int) -> list[tuple[Path, str]]:
    """The first n/2 women and n/2 men of lfw_labels.csv with a photo here, one photo a person."""
    import csv

    root = DATA / "faces_lfw"
    women: list[tuple[Path, str]] = []
    men: list[tuple[Path, str]] = []
    seen: set[str] = set()
    with open(root / "lfw_labels.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = root / "images" / row["file"]
            if row["identity"] in seen or not path.is_file():
                continue
            seen.add(row["identity"])
            female = row["female(1)/male(0)"] == "1"
            (women if female else men).append((path, "Women" if female else "Men"))
    return women[: (n + 1) // 2] + men[: n // 2]


def attribute_probs(models: Any, faces: list[Image.Image]) -> dict[str, np.ndarray]:
    """P(attribute) of aligned faces (any size) by the attribute classifier: {name: [N]}."""
    import torch

    from training.face_directions import attribute_columns, classify
    from tryon.face.models import face_tensor

    x = torch.cat([face_tensor(models, f) for f in faces])
    _, scores = classify(models, x)
    cols = attribute_columns(models)
    return {name: torch.sigmoid(scores[:, cols[name]]).numpy() for name in NAMED_ATTRIBUTES if name in cols}


def bench_identity(n: int, models_per_face: int, steps: int, cache: Path,
                   refine_steps: int = 0) -> tuple[dict[str, Any], Image.Image]:
    from tryon.face.align import ALIGN_RES, align_face, photo_res, realign
    from tryon.face.latent import FaceLatent
    from tryon.face.project import refine_face
    from tryon.pipelines import TryOnPipeline
    from tryon.vision.io import load_image

    rec = Recogniser()
    pipe = TryOnPipeline(project_steps=steps)
    fm = pipe.face_models
    models = {g: [load_image(DATA / "tryon_examples" / m) for m in names] for g, names in MODEL_PHOTOS.items()}
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    sheet_rows: list[Image.Image] = []
    projection_seconds: list[float] = []
    for i, (path, gender) in enumerate(lfw_photos(n)):
        photo = load_image(path)
        ref, how = rec.descriptor(photo)
        if ref is None:
            skipped.append(f"{path.name}: dlib finds no face in the photo")
            continue
        try:
            aligned = align_face(photo, ALIGN_RES)[0]
        except Exception as exc:  # NoFaceError: our aligner finds none.
            skipped.append(f"{path.name}: {exc}")
            continue
        crop = realign(photo, aligned, photo_res(aligned))
        latent, seconds = cached_projection(fm, aligned.image, path.stem, steps, cache)
        if seconds is not None:
            projection_seconds.append(seconds)
        if refine_steps:                # The service's follow-up: pivotal tuning around the projection.
            tuned = latent_cache(fm, cache) / f"{path.stem}_s{steps}_pti{refine_steps}.npz"
            if tuned.is_file():
                latent = FaceLatent.load(tuned)
            else:
                latent = refine_face(fm, latent, aligned.image, steps=refine_steps).latent
                latent.save(tuned)
        for k in range(models_per_face):
            mi = (i + k) % len(models[gender])
            model = models[gender][mi]
            per: dict[str, Any] = {"photo": path.name, "gender": gender, "model": MODEL_PHOTOS[gender][mi],
                                   "photo_res": crop.size[0], "photo_box": how}
            sheet_row: list[tuple[str, Image.Image]] = [("photo", crop)]
            for mode in ("generator", "photo"):
                faces: list[Image.Image] = []
                for label, edits in IDENTITY_EDITS:
                    t0 = time.perf_counter()
                    r = pipe.try_on_latent(latent, model, edits, photo=crop if mode == "photo" else None)
                    seconds = time.perf_counter() - t0
                    desc, box = rec.descriptor(r.image, r.composite.target_keypoints)
                    dist = float(np.linalg.norm(desc - ref)) if desc is not None else float("nan")
                    mask = np.asarray(r.composite.mask) > 127
                    ys = np.nonzero(mask.any(axis=1))[0]
                    per[f"{mode}/{label}"] = {
                        "distance": dist, "box": box, "seconds": seconds,
                        "eye_px": float(r.composite.metrics["eye_distance_px"]),
                        "face_px": float(ys.max() - ys.min() + 1) if len(ys) else float("nan"),
                    }
                    faces.append(r.face)
                    if k == 0 and (mode == "photo" or label == "none"):
                        sheet_row.append((f"{mode[:3]} {label} d={dist:.2f}", crop_panel(r.composite, 128)))
                probs = attribute_probs(fm, faces)
                for j, (label, _) in enumerate(IDENTITY_EDITS):
                    per[f"{mode}/{label}"]["p"] = {a: float(v[j]) for a, v in probs.items()}
                    per[f"{mode}/{label}"]["p_delta"] = {a: float(v[j] - v[0]) for a, v in probs.items()}
            rows.append(per)
            if k == 0 and i % max(1, n // 6) == 0:
                sheet_rows.append(labelled(sheet_row, 128))
        print(f"  {i + 1}/{n} {path.name}: photo/none {rows[-1]['photo/none']['distance']:.3f}, generator/none "
              f"{rows[-1]['generator/none']['distance']:.3f}" if rows and rows[-1]["photo"] == path.name else
              f"  {i + 1}/{n} {path.name}: skipped", flush=True)

    summary: dict[str, Any] = {}
    for mode in ("generator", "photo"):
        for label, _ in IDENTITY_EDITS:
            cells = [r[f"{mode}/{label}"] for r in rows]
            d = np.array([c["distance"] for c in cells])
            target = EDIT_TARGETS.get(label)
            entry: dict[str, Any] = {
                "distance_median": float(np.nanmedian(d)),
                "distance_mean": float(np.nanmean(d)),
                "recognised": float(np.mean(d < SAME_PERSON)),
                "eye_px_median": float(np.median([c["eye_px"] for c in cells])),
                "face_px_median": float(np.nanmedian([c["face_px"] for c in cells])),
                "seconds_median": float(np.median([c["seconds"] for c in cells])),
                "boxed_by_keypoints": float(np.mean([c["box"] == "keypoints" for c in cells])),
            }
            if target is not None:
                entry["target"] = target
                entry["target_delta"] = float(np.mean([c["p_delta"][target] for c in cells]))
                entry["others_abs_delta"] = float(np.mean(
                    [np.mean([abs(v) for a, v in c["p_delta"].items() if a != target]) for c in cells]))
            summary[f"{mode}/{label}"] = entry
    out = {
        "n_photos": len({r["photo"] for r in rows}), "n_tryons_per_setting": len(rows), "skipped": skipped,
        "project_steps": steps, "refine_steps": refine_steps, "models": MODEL_PHOTOS, "threshold": SAME_PERSON,
        "projection_seconds_median": float(np.median(projection_seconds)) if projection_seconds else None,
        "photo_res_median": float(np.median([r["photo_res"] for r in rows])),
        "summary": summary, "rows": rows,
    }
    return out, stack(sheet_rows)


def stack(sheets: list[Image.Image]) -> Image.Image:
    """Sheets one under the other."""
    if not sheets:
        return Image.new("RGB", (8, 8), (255, 255, 255))
    out = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), (255, 255, 255))
    y = 0
    for s in sheets:
        out.paste(s, (0, y))
        y += s.height
    return out


def print_identity(ident: dict[str, Any]) -> None:
    print(f"\nidentity: {ident['n_photos']} LFW photos, {ident['n_tryons_per_setting']} try-ons per setting "
          f"(dlib distance photo -> try-on face; recognised = share < {SAME_PERSON}; aligned photo "
          f"{ident['photo_res_median']:.0f} px median)")
    cols = ("dist med", "recognised", "eye px", "face px", "target", "dP target", "|dP| others", "s/try-on")
    print(f"{'setting':<22}" + "".join(f"{c:>12}" for c in cols))
    for key, e in ident["summary"].items():
        vals = [f"{e['distance_median']:.3f}", f"{e['recognised']:.2f}", f"{e['eye_px_median']:.0f}",
                f"{e['face_px_median']:.0f}", e.get("target", "-"),
                f"{e['target_delta']:+.3f}" if "target_delta" in e else "-",
                f"{e['others_abs_delta']:.3f}" if "others_abs_delta" in e else "-", f"{e['seconds_median']:.2f}"]
        print(f"{key:<22}" + "".join(f"{v:>12}" for v in vals))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small subset (a smoke run)")
    parser.add_argument("--sections", default="real,generated,pipeline,identity",
                        help="comma-separated: real, generated, pipeline, identity (default all)")
    parser.add_argument("--project-steps", type=int, default=20, help="projection steps in the try_on timing")
    parser.add_argument("--lfw", type=int, default=40, help="LFW photos in the identity section (half women)")
    parser.add_argument("--models-per-face", type=int, default=1, help="model photos each LFW photo goes onto")
    parser.add_argument("--identity-steps", type=int, default=50, help="projection steps in the identity section")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="identity section: pivotal tuning steps after the projection (the service: 40)")
    parser.add_argument("--cache", default="/tmp/bench_tryon_latents", help="where LFW projections are kept")
    parser.add_argument("--out", default=None,
                        help="JSON report (default benchmarks/results/bench_tryon[_identity].json)")
    args = parser.parse_args()
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"real", "generated", "pipeline", "identity"}
    if unknown:
        print(f"unknown section(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not (DATA / "tryon_examples").is_dir():
        print(f"{DATA / 'tryon_examples'} is absent: nothing to benchmark", file=sys.stderr)
        return 1
    import torch

    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"benchmark": "bench_tryon", "quick": args.quick, "sections": sorted(sections)}
    faces = aligned_faces(FACES[:2] if args.quick else FACES) if sections & {"real", "generated"} else {}
    if faces:
        report["faces"] = list(faces)
    if "real" in sections:
        print("real try-on photos:", flush=True)
        real, real_sheets = bench_real(faces, args.quick)
        report["real_photos"] = real
        if real_sheets:
            save_small(stack(real_sheets), RESULTS / "tryon_real.png")
    if "generated" in sections:
        print("generated models:", flush=True)
        gen, gen_sheet = bench_generated(faces, args.quick)
        report["generated_models"] = gen
        save_small(gen_sheet, RESULTS / "tryon_generated.png")
    if "pipeline" in sections:
        print("try_on with the shipped models:", flush=True)
        pipeline, render_sheet = bench_pipeline(args.project_steps)
        report["try_on"] = pipeline
        save_small(render_sheet, RESULTS / "tryon_render.png")
    if "identity" in sections:
        print("identity:", flush=True)
        ident, ident_sheet = bench_identity(8 if args.quick else args.lfw, args.models_per_face,
                                            args.identity_steps, Path(args.cache), args.refine_steps)
        report["identity"] = ident
        save_small(ident_sheet, RESULTS / ("tryon_identity_pti.png" if args.refine_steps else "tryon_identity.png"))
    report["seconds_total"] = time.perf_counter() - started
    report["machine"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    out = Path(args.out) if args.out else RESULTS / ("bench_tryon_identity.json" if sections == {"identity"}
                                                     else "bench_tryon.json")
    out.write_text(json.dumps(report, indent=2))

    cols = ("landmark_px", "landmark_px_p90", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    for title, key in (("real photos", "real_photos"), ("generated models", "generated_models")):
        if key not in report:
            continue
        part = report[key]
        print(f"\n{title} (medians, found = share; n = composites per blend)")
        print(f"{'blend':<10}" + "".join(f"{c:>16}" for c in (*cols, "n")))
        for blend, s in part["by_blend"].items():
            print(f"{blend:<10}" + "".join(f"{s.get(c, float('nan')):>16.3f}" for c in (*cols, "n")))
        print("seconds per step (laplacian, median): " + ", ".join(f"{k} {v:.3f}" for k, v in part["seconds"].items()))
    if "real_photos" in report and "generated_models" in report:
        real, gen = report["real_photos"], report["generated_models"]
        print(f"\nrefused photos: {len(real['refused'])} of {real['photos']}; generated located: {gen['located']}")
    if "try_on" in report:
        print(f"try_on: {json.dumps(report['try_on'])}")
    if "identity" in report:
        print_identity(report["identity"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
