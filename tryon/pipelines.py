"""The user-level operations, each one call with checked inputs returning a result dataclass:

- outfits, variants and garment transfer: `FashionPipeline.generate_outfit`, `garment_variants`,
  `garment_transfer` (from tryon.fashion, re-exported here);
- a face pasted onto a model image: `composite_face` (tryon.composite);
- try-on, all of it in one call: `try_on` / `TryOnPipeline` (below).

Try-on in one call: a face (photo or latent) + an outfit (image, generated result or spec) + edits
-> the face, edited, composited onto the model.

    from tryon.pipelines import try_on
    result = try_on(Image.open("selfie.jpg"), {"category": "tops", "colour": "blue", "gender": "Women"},
                    {"age": 10, "smile": 0.5})
    result.image.save("tryon.png")

Steps (each timed in `result.timings`, seconds): the face photo is aligned (`align_face`) twice from
one detection: at 256 px for the projection (`project_face`) -> FaceLatent, and at the photo's own
resolution (`photo_res`, up to 512 px) -> the face the shopper sees; the edits move the latent
(`edit_latent`) and the face G renders it and its unedited reconstruction (`render_face`); the
generator's change (edited − reconstruction) is applied to the photo (`apply_edit_to_photo`: with no
edit the face is the photo itself); the outfit is generated (`FashionPipeline.generate_outfit`, view
on_model) unless an image is given; `composite_face` pastes the face on at the model image's full
resolution. Without a photo (a bare latent) the generator's 64² face is pasted, as before.

The service stores the projection and the high-resolution crop and calls `try_on_latent` (latent +
photo + model image + edits -> TryOnResult), the step `try_on` ends with. Projections and generated outfits are kept in
LRU caches (keyed by the photo's pixel hash and projection settings, and by the outfit spec), so
trying the same face on several outfits, or several edits on one outfit, projects and generates once.

`TryOnPipeline` holds the models and the caches (thread-safe); the module-level `try_on` uses one
shared pipeline per process, built on first use.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from PIL import Image

from tryon.composite import CompositeResult, composite_face
from tryon.composite.photo_edit import apply_edit_to_photo
from tryon.errors import InputError
from tryon.fashion import FashionPipeline, OutfitResult, OutfitSpec, TransferResult, garment_transfer, garment_variants
from tryon.fashion.outfits import require_on_model

if TYPE_CHECKING:
    from tryon.face.latent import FaceLatent
    from tryon.face.models import FaceModels

__all__ = [
    "CompositeResult",
    "FashionPipeline",
    "LRUCache",
    "OutfitResult",
    "OutfitSpec",
    "TransferResult",
    "TryOnPipeline",
    "TryOnResult",
    "composite_face",
    "default_pipeline",
    "garment_transfer",
    "garment_variants",
    "try_on",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# The fields an outfit spec dict may carry (FashionPipeline.generate_outfit's friendly arguments).
OUTFIT_SPEC_FIELDS = ("category", "colour", "gender", "labels", "seed", "truncation")
DEFAULT_PROJECT_STEPS = 50


class LRUCache(Generic[K, V]):
    """A small thread-safe least-recently-used map with hit/miss counters."""

    def __init__(self, maxsize: int = 32) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._data: collections.OrderedDict[K, V] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: K, value: V) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> tuple[V, bool]:
        """(value, was_cached). `make` runs outside the lock (two threads may both make a new key)."""
        value = self.get(key)
        if value is not None:
            return value, True
        value = make()
        self.put(key, value)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclasses.dataclass
class TryOnResult:
    """A try-on and what made it."""

    image: Image.Image                  # The composite, RGB (the model image's size, upscaled when small).
    face: Image.Image                   # The face pasted: the edited photo (S x S, S <= 512), or the
                                        #   generator's rendering (res x res) without a photo.
    rendered: Image.Image               # The generator's rendering of the edited latent, RGB res x res.
    model_image: Image.Image            # The model image the face went onto (as given or generated).
    composite: CompositeResult          # Mask, transform, compositing metrics and notes.
    latent: FaceLatent                  # The face latent after the edits.
    face_latent: FaceLatent             # The face latent before the edits (projected or given).
    outfit: OutfitResult | None         # The generated outfit, None when a model image was given.
    edits: dict[str, float]             # The strengths applied (instruction words merged in).
    photo: Image.Image | None = None    # The aligned photo the face came from (None: generator pixels only).
    notes: list[str] = dataclasses.field(default_factory=list)
    cached: dict[str, bool] = dataclasses.field(default_factory=dict)    # {"projection", "outfit"}: cache hits.
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # Seconds per step, and "total".

    @property
    def metrics(self) -> dict[str, Any]:
        return self.composite.metrics


def _image_key(image: Image.Image) -> str:
    """sha256 of an image's size, mode and pixels (the same picture decoded twice hashes the same)."""
    h = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _load_face_latent_dir(path: Path) -> tuple[FaceLatent, Image.Image | None]:
    """The latent of a `tryon project` folder (or latent.npz) and its aligned photo (photo.png), if any."""
    from tryon.face.latent import LATENT_FILE, PHOTO_FILE, FaceLatent

    file = path / LATENT_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path} holds no {LATENT_FILE}: give a face photo or a folder written by `tryon project`")
    photo_file = file.parent / PHOTO_FILE
    photo = None
    if photo_file.is_file():
        from tryon.vision.io import load_image

        photo = load_image(photo_file)
    return FaceLatent.load(file), photo


class TryOnPipeline:
    """Face models + fashion pipeline + caches. Models load on first use; inference is thread-safe."""

    def __init__(
        self,
        face_models: FaceModels | None = None,     # None = tryon.face.load_face_models() on first use.
        fashion: FashionPipeline | None = None,    # None = the shipped fashion model on first use.
        *,
        device: str = "cpu",                       # Where lazily loaded models run.
        project_steps: int = DEFAULT_PROJECT_STEPS,  # Optimisation steps of a photo's projection.
        cache_size: int = 32,                      # Entries in each LRU cache (projections, outfits).
    ) -> None:
        if project_steps < 0:
            raise InputError(f"project_steps must be >= 0, got {project_steps}")
        self._face_models = face_models
        self._fashion = fashion
        self.device = device
        self.project_steps = project_steps
        # A photo's projection and its aligned photo at its own resolution (keyed by pixels and steps).
        self.projections: LRUCache[tuple[str, int], tuple[FaceLatent, Image.Image]] = LRUCache(cache_size)
        self.outfits: LRUCache[tuple[Any, ...], OutfitResult] = LRUCache(cache_size)
        self._lock = threading.Lock()

    # --- Models (lazy) --------------------------------------------------------------------------------

    @property
    def face_models(self) -> FaceModels:
        with self._lock:
            if self._face_models is None:
                from tryon.face import load_face_models

                self._face_models = load_face_models(None, device=self.device)
            return self._face_models

    @property
    def fashion(self) -> FashionPipeline:
        with self._lock:
            if self._fashion is None:
                self._fashion = FashionPipeline.from_checkpoint(None, device=self.device)
            return self._fashion

    # --- Steps ----------------------------------------------------------------------------------------

    def face_latent(
        self,
        face: Image.Image | FaceLatent | str | os.PathLike[str],
        *,
        progress: Callable[[float, str], None] | None = None,
    ) -> tuple[FaceLatent, bool]:
        """The latent of a face: as given, loaded from a `tryon project` folder / latent.npz, or the
        projection of a photo (aligned first; cached). Returns (latent, was_cached)."""
        latent, _, cached = self.face_source(face, progress=progress)
        return latent, cached

    def face_source(
        self,
        face: Image.Image | FaceLatent | str | os.PathLike[str],
        *,
        progress: Callable[[float, str], None] | None = None,
    ) -> tuple[FaceLatent, Image.Image | None, bool]:
        """(latent, aligned photo at its own resolution or None, was_cached) of a face: a photo is
        aligned once (one detection, two crops: 256 px for the projection, `photo_res` for the face
        the shopper sees) and projected (cached); a `tryon project` folder gives its latent and its
        photo.png; a bare FaceLatent has no photo."""
        from tryon.face.latent import FaceLatent

        if isinstance(face, FaceLatent):
            return face, None, False
        if isinstance(face, str | os.PathLike):
            path = Path(face)
            if path.is_dir() or path.suffix == ".npz":
                latent, photo_crop = _load_face_latent_dir(path)
                return latent, photo_crop, False
            from tryon.vision.io import load_image

            face = load_image(path)
        if not isinstance(face, Image.Image):
            kind = type(face).__name__
            raise InputError(f"the face must be a photo, a FaceLatent or a projection folder, got {kind}")
        photo = face.convert("RGB") if face.mode != "RGB" else face
        key = (_image_key(photo), self.project_steps)

        def project() -> tuple[FaceLatent, Image.Image]:
            from tryon.face import project_face
            from tryon.face.align import ALIGN_RES, align_face, photo_res, realign

            aligned = align_face(photo, ALIGN_RES)[0]  # NoFaceError (InputError) when there is no face.
            crop = realign(photo, aligned, photo_res(aligned))
            latent = project_face(self.face_models, aligned.image, steps=self.project_steps, progress=progress).latent
            return latent, crop

        (latent, crop), cached = self.projections.get_or_make(key, project)
        return latent, crop, cached

    def edit_and_render(
        self, latent: FaceLatent, edits: Mapping[str, float] | None, instruction: str | None
    ) -> tuple[FaceLatent, Image.Image, dict[str, float]]:
        """(edited latent, rendered face, strengths applied). No edits: the latent as it is."""
        from tryon.face.edits import edit_face

        edited = edit_face(self.face_models, latent, edits, instruction)
        return edited.latent, edited.image, edited.strengths

    def model_image(
        self, outfit: Image.Image | OutfitResult | OutfitSpec | Mapping[str, Any] | str | os.PathLike[str]
    ) -> tuple[Image.Image, OutfitResult | None, bool, bool]:
        """(model image, outfit result or None, generated, was_cached) for any outfit form.

        An image or image path is a photo (not pose-normalized); an OutfitResult, OutfitSpec or spec
        dict ({"category", "colour", "gender", "labels", "seed", "truncation"}) is a generated on-model
        outfit (cached by spec). A flat (garment-only) outfit has no model: InputError.
        """
        if isinstance(outfit, str | os.PathLike):
            from tryon.vision.io import load_image

            outfit = load_image(Path(outfit))
        if isinstance(outfit, Image.Image):
            return (outfit.convert("RGB") if outfit.mode != "RGB" else outfit), None, False, False
        if isinstance(outfit, OutfitResult):
            self._check_on_model(outfit.labels)
            return outfit.image, outfit, True, False
        pipe = self.fashion
        if isinstance(outfit, OutfitSpec):
            self._check_on_model(outfit.labels)
            labels, seed, psi = dict(outfit.labels), outfit.seed, outfit.truncation
            kwargs: dict[str, Any] = {"labels": labels}
        elif isinstance(outfit, Mapping):
            unknown = sorted(set(outfit) - set(OUTFIT_SPEC_FIELDS) - {"view"})
            if unknown:
                raise InputError(f"unknown outfit field(s) {', '.join(unknown)}; use {', '.join(OUTFIT_SPEC_FIELDS)}")
            require_on_model({"view": outfit["view"]} if outfit.get("view") is not None else None)
            kwargs = {k: outfit[k] for k in ("category", "colour", "gender", "labels") if outfit.get(k) is not None}
            seed, psi = int(outfit.get("seed", 0)), float(outfit.get("truncation", 0.7))
        else:
            raise InputError(f"the outfit must be an image, an OutfitResult or a spec, got {type(outfit).__name__}")
        spec = pipe.spec(view="on_model", seed=seed, truncation=psi, **kwargs)
        key = (tuple(sorted(spec.labels.items())), spec.seed, round(spec.truncation, 6), pipe.checkpoint_id)

        def generate() -> OutfitResult:
            return pipe.generate_outfit(labels=spec.labels, seeds=[spec.seed], truncation=spec.truncation)[0]

        result, cached = self.outfits.get_or_make(key, generate)
        return result.image, result, True, cached

    def _check_on_model(self, labels: Mapping[str, Any]) -> None:
        column = None
        if self._fashion is not None:
            try:
                column = self._fashion.column_for("view")
            except InputError:
                column = None
        require_on_model(labels, view_column=column)

    # --- The whole thing ------------------------------------------------------------------------------

    def try_on(
        self,
        face: Image.Image | FaceLatent | str | os.PathLike[str],
        outfit: Image.Image | OutfitResult | OutfitSpec | Mapping[str, Any] | str | os.PathLike[str],
        edits: Mapping[str, float] | None = None,
        *,
        instruction: str | None = None,
        generated: bool | None = None,
        progress: Callable[[float, str], None] | None = None,
        **composite_options: Any,
    ) -> TryOnResult:
        """Put `face` (a photo, a FaceLatent, or a projection folder) onto `outfit`'s model with `edits`.

        edits: {direction name: strength} (tryon.face.EDIT_NAMES); instruction: words such as
            "older, smiling" (merged with `edits`).
        generated: whether the model image is a generated pose-normalized one; None = yes for
            outfits/specs, no for images (a photo).
        progress: progress(fraction, message), e.g. a job's progress.
        composite_options: passed to `composite_face` (blend, warp, colour_strength, min_side, ...).
        Raises InputError (NoFaceError, NoUsableFaceError, unknown edit or label) for unusable input.
        """
        report = progress or (lambda fraction, message: None)
        started = time.perf_counter()
        report(0.0, "loading the face")

        def projection_progress(fraction: float, message: str) -> None:
            report(0.05 + 0.6 * fraction, message)

        base, photo, face_cached = self.face_source(face, progress=projection_progress)
        face_seconds = time.perf_counter() - started

        report(0.7, "preparing the model image")
        t0 = time.perf_counter()
        model, outfit_result, is_generated, outfit_cached = self.model_image(outfit)
        outfit_seconds = time.perf_counter() - t0

        result = self.try_on_latent(
            base, model, edits, instruction=instruction, photo=photo,
            generated=is_generated if generated is None else generated,
            progress=lambda fraction, message: report(0.75 + 0.25 * fraction, message), **composite_options,
        )
        result.outfit = outfit_result
        result.cached = {"projection": face_cached, "outfit": outfit_cached}
        result.timings = {"face_latent": face_seconds, "outfit": outfit_seconds, **result.timings}
        result.timings["total"] = time.perf_counter() - started
        return result

    def try_on_latent(
        self,
        latent: FaceLatent,
        model_image: Image.Image,
        edits: Mapping[str, float] | None = None,
        *,
        instruction: str | None = None,
        photo: Image.Image | None = None,
        base: FaceLatent | None = None,
        generated: bool = False,
        progress: Callable[[float, str], None] | None = None,
        **composite_options: Any,
    ) -> TryOnResult:
        """A projected face (+ its aligned photo) with edits, composited onto a model image.

        latent: the projection of `photo` (its rendering is the reconstruction the edits are measured
            against).
        photo: the aligned photo at its own resolution (`photo_res`); the face shown is this photo,
            with the generator's change applied where there are edits. None: the generator's 64² face.
        base: an earlier edit of `latent` to edit further (a stored edit); None = `latent` itself.
        edits / instruction: as in `try_on`. generated: the model image is a generated one.
        composite_options: passed to `composite_face`.
        """
        report = progress or (lambda fraction, message: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        report(0.0, "editing and rendering the face")
        t0 = time.perf_counter()
        start = base if base is not None else latent
        edited, rendered, strengths = self.edit_and_render(start, edits, instruction)
        timings["edit_render"] = time.perf_counter() - t0
        notes: list[str] = []
        face = rendered
        if photo is not None:
            t0 = time.perf_counter()
            if edited is latent:
                face = photo.convert("RGB") if photo.mode != "RGB" else photo
            else:
                from tryon.face import render_face

                # The reconstruction on the same (tuned or plain) generator as the edit, so that their
                # difference is the edit alone (an edit stored before the face was tuned has no PTI).
                reconstruction = render_face(self.face_models, latent.replace(pti=edited.pti))
                face = apply_edit_to_photo(photo, reconstruction, rendered).image
            timings["photo_edit"] = time.perf_counter() - t0
        else:
            notes.append("no photo of this face was kept: the face generator's rendering was pasted")

        report(0.5, "compositing")
        composite = composite_face(face, model_image, generated=generated, **composite_options)
        timings["composite"] = composite.timings["total"]
        timings["total"] = time.perf_counter() - started
        report(1.0, "done")
        return TryOnResult(
            image=composite.image,
            face=face,
            rendered=rendered,
            model_image=model_image,
            composite=composite,
            latent=edited,
            face_latent=latent,
            outfit=None,
            edits=strengths,
            photo=photo,
            notes=[*notes, *composite.notes],
            timings=timings,
        )


_default: TryOnPipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> TryOnPipeline:
    """The process's shared pipeline (shipped models, loaded on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TryOnPipeline()
        return _default


def try_on(
    face: Image.Image | FaceLatent | str | os.PathLike[str],
    outfit: Image.Image | OutfitResult | OutfitSpec | Mapping[str, Any] | str | os.PathLike[str],
    edits: Mapping[str, float] | None = None,
    *,
    pipeline: TryOnPipeline | None = None,
    **options: Any,
) -> TryOnResult:
    """`TryOnPipeline.try_on` on `pipeline` (default: the shared one, whose caches persist per process)."""
    return (pipeline or default_pipeline()).try_on(face, outfit, edits, **options)
