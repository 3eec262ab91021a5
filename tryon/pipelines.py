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

Steps (each timed in `result.timings`, seconds): the face photo is aligned (`align_face`) and
projected (`project_face`) -> FaceLatent; the edits move it (`edit_latent`) and the face G renders it
(`render_face`); the outfit is generated (`FashionPipeline.generate_outfit`, view on_model) unless an
image is given; `composite_face` pastes the face on. Projections and generated outfits are kept in
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
from tryon.errors import InputError
from tryon.fashion import FashionPipeline, OutfitResult, OutfitSpec, TransferResult, garment_transfer, garment_variants

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
ALIGN_RES = 256            # Side of the aligned crop handed to the projection, px (the API stores the same).
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
    face: Image.Image                   # The rendered, edited face, RGB res x res.
    model_image: Image.Image            # The model image the face went onto (as given or generated).
    composite: CompositeResult          # Mask, transform, compositing metrics and notes.
    latent: FaceLatent                  # The face latent after the edits.
    face_latent: FaceLatent             # The face latent before the edits (projected or given).
    outfit: OutfitResult | None         # The generated outfit, None when a model image was given.
    edits: dict[str, float]             # The strengths applied (instruction words merged in).
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


def _load_face_latent_dir(path: Path) -> FaceLatent:
    from tryon.face.latent import LATENT_FILE, FaceLatent

    file = path / LATENT_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path} holds no {LATENT_FILE}: give a face photo or a folder written by `tryon project`")
    return FaceLatent.load(file)


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
        self.projections: LRUCache[tuple[str, int], FaceLatent] = LRUCache(cache_size)
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
        from tryon.face.latent import FaceLatent

        if isinstance(face, FaceLatent):
            return face, False
        if isinstance(face, str | os.PathLike):
            path = Path(face)
            if path.is_dir() or path.suffix == ".npz":
                return _load_face_latent_dir(path), False
            from tryon.vision.io import load_image

            face = load_image(path)
        if not isinstance(face, Image.Image):
            kind = type(face).__name__
            raise InputError(f"the face must be a photo, a FaceLatent or a projection folder, got {kind}")
        photo = face.convert("RGB") if face.mode != "RGB" else face
        key = (_image_key(photo), self.project_steps)

        def project() -> FaceLatent:
            from tryon.face import project_face
            from tryon.face.align import align_face

            aligned = align_face(photo, ALIGN_RES)[0]  # NoFaceError (InputError) when there is no face.
            return project_face(self.face_models, aligned.image, steps=self.project_steps, progress=progress).latent

        return self.projections.get_or_make(key, project)

    def edit_and_render(
        self, latent: FaceLatent, edits: Mapping[str, float] | None, instruction: str | None
    ) -> tuple[FaceLatent, Image.Image, dict[str, float]]:
        """(edited latent, rendered face, strengths applied). No edits: the latent as it is."""
        from tryon.face import render_face

        strengths = {str(k): float(v) for k, v in (edits or {}).items()}
        edited = latent
        if strengths or instruction:
            from tryon.face.edits import edit_latent

            edited = edit_latent(self.face_models, latent, strengths, instruction=instruction)
            applied = edited.meta.get("edits") if isinstance(edited.meta, dict) else None
            if isinstance(applied, Mapping):
                strengths = {str(k): float(v) for k, v in applied.items()}
        return edited, render_face(self.face_models, edited), strengths

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
            view = outfit.get("view")
            if view is not None and str(view).lower() != "on_model":
                raise InputError(f"a try-on needs an on-model outfit (view on_model), got view {view!r}")
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

    def _check_on_model(self, labels: Mapping[str, str]) -> None:
        view = labels.get("view")
        if view is None and self._fashion is not None:
            try:
                view = labels.get(self._fashion.column_for("view"))
            except InputError:
                view = None
        if view is not None and str(view) != "on_model":
            raise InputError(f"a try-on needs an on-model outfit (view on_model), got view {view!r}")

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
        timings: dict[str, float] = {}
        started = time.perf_counter()

        report(0.0, "loading the face")
        t0 = time.perf_counter()

        def projection_progress(fraction: float, message: str) -> None:
            report(0.05 + 0.6 * fraction, message)

        base, face_cached = self.face_latent(face, progress=projection_progress)
        timings["face_latent"] = time.perf_counter() - t0

        report(0.7, "editing and rendering the face")
        t0 = time.perf_counter()
        edited, rendered, strengths = self.edit_and_render(base, edits, instruction)
        timings["edit_render"] = time.perf_counter() - t0

        report(0.8, "preparing the model image")
        t0 = time.perf_counter()
        model, outfit_result, is_generated, outfit_cached = self.model_image(outfit)
        timings["outfit"] = time.perf_counter() - t0

        report(0.9, "compositing")
        composite = composite_face(
            rendered, model, generated=is_generated if generated is None else generated, **composite_options
        )
        timings["composite"] = composite.timings["total"]
        timings["total"] = time.perf_counter() - started
        report(1.0, "done")
        return TryOnResult(
            image=composite.image,
            face=rendered,
            model_image=model,
            composite=composite,
            latent=edited,
            face_latent=base,
            outfit=outfit_result,
            edits=strengths,
            notes=list(composite.notes),
            cached={"projection": face_cached, "outfit": outfit_cached},
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
