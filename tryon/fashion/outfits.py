"""Outfits from the conditional fashion generator: labels checked, latents reproducible.

    from tryon.fashion import FashionPipeline
    pipe = FashionPipeline.from_checkpoint(None)         # None -> the shipped tryon/assets/fashion
    outs = pipe.generate_outfit(category="tops", colour="blue", gender="Men", view="on_model",
                                seeds=[0, 1], truncation=0.7)
    outs[0].image                                        # PIL RGB, res x res

Requests name labels of the checkpoint's label schema (`tryon labels --checkpoint DIR`), either
directly (`labels={"articleGroup": "tops"}`) or through the friendly fields category / colour /
gender / view, which map onto the schema's columns by name (`FIELD_ALIASES`). Values match exactly,
or case-insensitively when that is unambiguous; an unknown one is an InputError that lists the
allowed values.

Latents follow `tryon generate` (NVlabs' generate.py): z = RandomState(seed).randn(z_dim), const
noise, truncation w_avg + psi * (w - w_avg) on every ws. So an outfit here is the image the CLI and
the API make for the same checkpoint, labels, seed and truncation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from tryon.errors import CheckpointError, InputError
from tryon.nn.layer_groups import LAYER_GROUPS

if TYPE_CHECKING:
    from tryon.feature_net import FeatureNet
    from tryon.labels import LabelDistribution, LabelSchema
    from tryon.nn import Discriminator, Generator

log = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1                    # np.random.RandomState accepts 0 .. 2**32 - 1.
MAX_TRUNCATION = 1.5                    # Above 1 extrapolates away from the average outfit.
MAX_SEEDS = 64                          # Seeds per call (a request, a CLI run).
SHIPPED_FASHION = Path(__file__).resolve().parents[1] / "assets" / "fashion"
SHIPPED_FEATURES = Path(__file__).resolve().parents[1] / "assets" / "fashion_features"
CATALOG_MIN_IMAGES = 50                 # Training images a catalog group needs (see catalog_specs).

# Friendly request fields -> label schema column names they may stand for (first match wins,
# compared case-insensitively).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "category": ("category", "articleGroup", "articleType", "article_type", "subCategory", "masterCategory"),
    "colour": ("colour", "color", "colourGroup", "baseColour", "baseColor", "base_colour"),
    "gender": ("gender", "sex"),
    "view": ("view", "pose"),
}


@dataclasses.dataclass(frozen=True)
class OutfitSpec:
    """One checked outfit request: schema labels, seed, truncation."""

    labels: dict[str, str]              # {schema column name: value}, canonical spelling.
    seed: int                           # 0 .. 2**32 - 1.
    truncation: float                   # psi: 1 = none, 0 = the average outfit.


ON_MODEL = "on_model"                   # The view of an image that shows a model (what a try-on needs).


class NotOnModelError(InputError):
    """An outfit, catalog item or image of another view (a flat garment): no model to put a face on."""


def view_of(labels: Mapping[str, Any] | None, view_column: str | None = None) -> str | None:
    """The view an outfit's labels name: the schema's view column when given and present, else a
    label named "view" in any case. None when they name no view."""
    labels = labels or {}
    if view_column is not None and view_column in labels:
        return str(labels[view_column])
    for key, value in labels.items():
        if str(key).casefold() == "view":
            return str(value)
    return None


def require_on_model(labels: Mapping[str, Any] | None, what: str = "outfit", *, view_column: str | None = None) -> None:
    """NotOnModelError when `labels` name a view other than on_model (in any case). Labels without a
    view pass: an image of unknown view may well show a model. `what` names the thing in the message."""
    view = view_of(labels, view_column)
    if view is not None and view.casefold() != ON_MODEL:
        raise NotOnModelError(
            f"the {what} is a {view} image: it shows no model to put a face on; choose an {ON_MODEL} one"
        )


@dataclasses.dataclass
class OutfitResult:
    """One generated image with what made it."""

    image: Image.Image                  # RGB, res x res.
    labels: dict[str, str]              # Schema labels (canonical); for a mix / interpolation: the base's.
    seed: int | None                    # The z seed (None when the latent is not one seed's, e.g. a mix).
    truncation: float                   # psi used for the mapping.
    ws: np.ndarray                      # W+ latent, float32 [num_ws, w_dim].
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # Seconds per step.
    params: dict[str, Any] = dataclasses.field(default_factory=dict)     # How it was made (variants).


class FashionPipeline:
    """The fashion generator with its label schema: resolves labels, maps seeds, renders ws.

    Thread-safe for inference (no module state changes). D and the domain classifier load lazily
    (garment transfer needs them; outfits do not).
    """

    def __init__(
        self,
        G: Generator,                           # The conditional generator (eval mode).
        schema: LabelSchema | None,             # Its label schema; None = the checkpoint names no labels.
        *,
        directory: Path | None = None,          # Checkpoint folder (for D); None = none on disk.
        checkpoint_id: str = "",                # sha256 of the checkpoint's config.json.
        device: str | torch.device = "cpu",     # Where the networks run.
        ops_impl: str = "auto",                 # tryon.ops implementation ("auto", "cpp", "cuda", "ref").
        features_dir: Path | None = None,       # Domain classifier; None = fashion_features beside the checkpoint.
        distribution: LabelDistribution | None = None,  # Its training data's label combinations, if recorded.
        precision: str = "fp32",                # Of rendering: "fp32", "bf16" or "auto" (see `resolve_precision`).
    ) -> None:
        if schema is not None and schema.dim != int(G.c_dim):
            raise CheckpointError(
                f"the fashion model's label schema has {schema.dim} entries but its generator takes {G.c_dim}"
            )
        self.G = G
        self.schema = schema
        self.directory = directory
        self.checkpoint_id = checkpoint_id
        self.device = torch.device(device)
        self.ops_impl = ops_impl
        self.features_dir = features_dir
        self.distribution = distribution
        from tryon.nn import resolve_precision

        self.precision = resolve_precision(precision, self.device)
        self._D: Discriminator | None = None
        self._classifier: FeatureNet | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | Path | None = None,    # Checkpoint folder; None = the shipped tryon/assets/fashion.
        *,
        device: str | torch.device = "cpu",
        ops_impl: str = "auto",
        features_dir: str | Path | None = None,  # Domain classifier; None = tryon/assets/fashion_features.
        precision: str = "fp32",                 # Of rendering (see `resolve_precision`).
    ) -> FashionPipeline:
        """Load the G_ema of a checkpoint (strict). Raises CheckpointError with the reason."""
        from tryon.checkpoint import CONFIG_FILE, load_checkpoint
        from tryon.labels import LabelSchema, recorded_distribution
        from tryon.nn import Generator

        path = Path(directory) if directory is not None else SHIPPED_FASHION
        ckpt = load_checkpoint(path, names=("G_ema",), device=device)
        G = ckpt.networks["G_ema"]
        if not isinstance(G, Generator):
            raise CheckpointError(f"G_ema of {path} is not a generator")
        schema = LabelSchema.from_json(ckpt.label_schema) if ckpt.label_schema else None
        checkpoint_id = hashlib.sha256((path / CONFIG_FILE).read_bytes()).hexdigest()
        return cls(
            G,
            schema,
            directory=path,
            checkpoint_id=checkpoint_id,
            device=device,
            ops_impl=ops_impl,
            features_dir=Path(features_dir) if features_dir is not None else None,
            distribution=recorded_distribution(path, ckpt.training) if schema is not None else None,
            precision=precision,
        )

    # --- Shape ----------------------------------------------------------------------------------------

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    @property
    def num_ws(self) -> int:
        return int(self.G.num_ws)

    @property
    def conditional(self) -> bool:
        return int(self.G.c_dim) > 0

    def layer_indices(self, group: str) -> list[int]:
        """The ws indices of a style-mixing layer group ("coarse", "middle" or "fine")."""
        if group not in LAYER_GROUPS:
            raise InputError(f"unknown layer group {group!r}; the groups are: {', '.join(LAYER_GROUPS)}")
        lo, hi = self.G.synthesis.layer_groups()[group]
        return list(range(lo, hi))

    # --- Labels ---------------------------------------------------------------------------------------

    def field_columns(self) -> dict[str, str]:
        """{friendly field: schema column} for the fields this model has."""
        if self.schema is None:
            return {}
        by_folded = {col.name.casefold(): col.name for col in self.schema.columns}
        out = {}
        for field, aliases in FIELD_ALIASES.items():
            for alias in aliases:
                if alias.casefold() in by_folded:
                    out[field] = by_folded[alias.casefold()]
                    break
        return out

    def resolve_labels(
        self,
        *,
        category: str | None = None,
        colour: str | None = None,
        gender: str | None = None,
        view: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Friendly fields + schema labels -> {column: canonical value}. InputError says what is allowed."""
        fields = {"category": category, "colour": colour, "gender": gender, "view": view}
        given = {k: v for k, v in fields.items() if v is not None}
        labels = dict(labels or {})
        if self.schema is None:
            if self.conditional:
                raise CheckpointError("the fashion model is conditional but names no labels; it cannot be used")
            if given or labels:
                raise InputError("this fashion model is unconditional: it takes no labels")
            return {}
        schema = self.schema
        columns = self.field_columns()
        resolved: dict[str, str] = {}
        for field, value in given.items():
            column = columns.get(field)
            if column is None:
                names = ", ".join(c.name for c in schema.columns)
                raise InputError(f"this fashion model has no {field} label; its labels are: {names}")
            resolved[column] = value
        for name, value in labels.items():
            column = schema.column(name).name  # InputError lists the labels.
            if column in resolved and resolved[column].casefold() != str(value).casefold():
                raise InputError(f"label {column} is given twice with different values")
            resolved[column] = str(value)
        canonical = {}
        for name, value in resolved.items():
            col = schema.column(name)
            canonical[col.name] = col.values[schema.index(name, value) - col.offset]  # InputError lists values.
        if self.conditional and not canonical:
            names = ", ".join(c.name for c in schema.columns)
            raise InputError(f"give at least one label (category, colour, gender, view, or any of: {names})")
        return canonical

    def column_for(self, field: str) -> str:
        """The schema column of a friendly field; InputError when the model has none."""
        column = self.field_columns().get(field)
        if column is None:
            names = ", ".join(c.name for c in self.schema.columns) if self.schema else "none"
            raise InputError(f"this fashion model has no {field} label; its labels are: {names}")
        return column

    def values_of(self, field: str) -> tuple[str, ...]:
        """The values of a friendly field's column (e.g. every colour)."""
        assert self.schema is not None
        return self.schema.column(self.column_for(field)).values

    def condition(self, labels: Mapping[str, str]) -> np.ndarray:
        """{column: value} -> condition vector float32 [c_dim]."""
        if self.schema is None:
            return np.zeros([int(self.G.c_dim)], dtype=np.float32)
        return self.schema.encode(labels)

    def spec(
        self,
        *,
        category: str | None = None,
        colour: str | None = None,
        gender: str | None = None,
        view: str | None = None,
        labels: Mapping[str, str] | None = None,
        seed: int = 0,
        truncation: float = 0.7,
    ) -> OutfitSpec:
        """A checked OutfitSpec (labels resolved, seed and truncation in range)."""
        check_seed(seed)
        check_truncation(truncation)
        resolved = self.resolve_labels(category=category, colour=colour, gender=gender, view=view, labels=labels)
        return OutfitSpec(labels=resolved, seed=int(seed), truncation=float(truncation))

    # --- Latents and images ---------------------------------------------------------------------------

    def z_for_seed(self, seed: int) -> np.ndarray:
        """float64 [z_dim]: NVlabs' z for a seed."""
        return np.random.RandomState(seed).randn(int(self.G.z_dim))

    @torch.no_grad()
    def map_specs(self, specs: Sequence[OutfitSpec]) -> torch.Tensor:
        """Specs -> W+ latents [N, num_ws, w_dim] on the device, each with its own truncation."""
        from tryon.ops import use_impl

        G = self.G
        z = np.stack([self.z_for_seed(s.seed) for s in specs])
        c = np.stack([self.condition(s.labels) for s in specs]).astype(np.float32)
        psi = torch.tensor([s.truncation for s in specs], dtype=torch.float32, device=self.device)
        with use_impl(self.ops_impl):
            z_t = torch.from_numpy(z).to(torch.float32).to(self.device)
            c_t = torch.from_numpy(c).to(self.device) if self.conditional else None
            ws = G.mapping(z_t, c_t)
            if bool((psi != 1).any()):
                # Truncation per sample: w_avg + psi * (w - w_avg), as G.mapping does for one psi.
                ws = G.mapping.w_avg.lerp(ws, psi.reshape(-1, 1, 1))
        return ws

    @torch.no_grad()
    def mean_ws(self, labels: Mapping[str, str], num: int = 256, seed: int = 0) -> torch.Tensor:
        """The average W+ latent of a label (the mean over `num` seeds' w) [num_ws, w_dim]."""
        from tryon.ops import use_impl

        G = self.G
        z = torch.from_numpy(np.random.RandomState(seed).randn(num, int(G.z_dim))).to(torch.float32).to(self.device)
        c = torch.from_numpy(np.tile(self.condition(labels), (num, 1))).to(self.device) if self.conditional else None
        with use_impl(self.ops_impl):
            return G.mapping(z, c).mean(dim=0)

    def synthesize(self, ws: torch.Tensor, half_dtype: torch.dtype | None = None) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] -> images float [N, 3, res, res] in about [-1, 1] (const noise).
        Differentiable (no torch.no_grad here). half_dtype: of the G's fp16 blocks (None = NVlabs')."""
        from tryon.ops import use_impl

        with use_impl(self.ops_impl):
            return self.G.synthesis(ws.to(self.device), noise_mode="const", half_dtype=half_dtype)

    @torch.no_grad()
    def render(self, ws: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        """W+ [N, num_ws, w_dim] (or one [num_ws, w_dim]) -> uint8 images [H, W, 3], in order."""
        from tryon.imaging import to_uint8

        t = torch.as_tensor(np.asarray(ws) if isinstance(ws, np.ndarray) else ws, dtype=torch.float32)
        if t.ndim == 2:
            t = t[None]
        half = torch.bfloat16 if self.precision == "bf16" else None
        return list(to_uint8(self.synthesize(t, half_dtype=half)))

    def generate_specs(self, specs: Sequence[OutfitSpec]) -> tuple[torch.Tensor, list[np.ndarray]]:
        """One forward pass for all `specs` -> (ws [N, num_ws, w_dim], uint8 images [H, W, 3])."""
        ws = self.map_specs(specs)
        return ws, self.render(ws)

    def generate_outfit(
        self,
        category: str | None = None,            # Friendly fields (see FIELD_ALIASES) ...
        colour: str | None = None,
        gender: str | None = None,
        view: str | None = None,
        labels: Mapping[str, str] | None = None,  # ... and/or labels by schema name.
        seeds: Sequence[int] = (0,),            # One image per seed.
        truncation: float = 0.7,                # psi: 1 = full variety, 0 = the average outfit of the labels.
    ) -> list[OutfitResult]:
        """Outfit images for the labels, one per seed. InputError for unknown labels or bad values."""
        seeds = list(seeds)
        if not seeds:
            raise InputError("give at least one seed")
        if len(seeds) > MAX_SEEDS:
            raise InputError(f"at most {MAX_SEEDS} seeds per call, got {len(seeds)}")
        started = time.perf_counter()
        base = self.spec(
            category=category, colour=colour, gender=gender, view=view, labels=labels, seed=seeds[0],
            truncation=truncation,
        )
        for seed in seeds:
            check_seed(seed)
        specs = [dataclasses.replace(base, seed=int(s)) for s in seeds]
        resolved = time.perf_counter()
        ws = self.map_specs(specs)
        mapped = time.perf_counter()
        images = self.render(ws)
        done = time.perf_counter()
        timings = {
            "resolve_s": resolved - started,
            "mapping_s": (mapped - resolved) / len(specs),
            "synthesis_s": (done - mapped) / len(specs),
        }
        ws_np = ws.cpu().numpy().astype(np.float32)
        return [
            OutfitResult(
                image=Image.fromarray(img),
                labels=dict(s.labels),
                seed=s.seed,
                truncation=s.truncation,
                ws=ws_np[i],
                timings=dict(timings),
                params={"mode": "outfit"},
            )
            for i, (s, img) in enumerate(zip(specs, images, strict=True))
        ]

    def friendly_fields(self, labels: Mapping[str, str]) -> dict[str, str | None]:
        """{column: value} -> {"category", "colour", "gender", "view": value or None} (for filters, names)."""
        columns = self.field_columns()
        return {field: labels.get(columns[field]) if field in columns else None for field in FIELD_ALIASES}

    def catalog_specs(self, per_group: int = 2, truncation: float = 0.7) -> list[tuple[str, OutfitSpec]]:
        """The shipped catalog: `per_group` items per category x gender x view (values other than
        "other"), seeds 0, 1, 2, ... Deterministic for a checkpoint. Returns [(name, spec)] in catalog order.

        With the training data's label distribution (`distribution`), only the groups it holds in number
        are offered (at least CATALOG_MIN_IMAGES images: no shoes "on a model" from 5 photos), and each
        group's items take its most frequent colours in turn; without it, every group, colours spread
        over the items."""
        from tryon.labels import OTHER

        columns = self.field_columns()
        if self.schema is None or not columns:
            return [(f"outfit {k}", OutfitSpec(labels={}, seed=k, truncation=truncation)) for k in range(8 * per_group)]

        def values(field: str) -> list[str | None]:
            if field not in columns:
                return [None]
            assert self.schema is not None
            vals = [v for v in self.schema.column(columns[field]).values if v != OTHER]
            return list(vals) or [None]

        def named(chosen: dict[str, str | None]) -> dict[str, str]:
            return {columns[f]: v for f, v in chosen.items() if v is not None and f in columns}

        colours = values("colour")
        out: list[tuple[str, OutfitSpec]] = []
        for category in values("category"):
            for gender in values("gender"):
                for view in values("view"):
                    group = {"category": category, "gender": gender, "view": view}
                    group_colours = colours
                    if self.distribution is not None:
                        if self.distribution.count(named(group)) < CATALOG_MIN_IMAGES:
                            continue
                        counts = {c: self.distribution.count(named({**group, "colour": c})) for c in colours}
                        group_colours = sorted((c for c in colours if counts[c]), key=lambda c: -counts[c]) or colours
                    for j in range(per_group):
                        k = len(out)
                        if self.distribution is not None:
                            colour = group_colours[j % len(group_colours)]
                        else:
                            colour = colours[(k * 5) % len(colours)]  # A stride coprime to most lengths spreads them.
                        labels = named({**group, "colour": colour})
                        words = [colour, category, f"({', '.join(v for v in (gender, view) if v)})"]
                        name = " ".join(w for w in words if w and w != "()").replace("_", " ")
                        out.append((name, OutfitSpec(labels=labels, seed=k, truncation=truncation)))
        return out

    # --- Networks loaded on demand --------------------------------------------------------------------

    def discriminator(self) -> Discriminator:
        """The checkpoint's D (its multi-scale features are the perceptual loss of projection)."""
        if self._D is None:
            with self._lock:
                if self._D is None:
                    from tryon.checkpoint import load_checkpoint
                    from tryon.nn import Discriminator

                    if self.directory is None:
                        raise CheckpointError("this fashion pipeline has no checkpoint folder to load D from")
                    D = load_checkpoint(self.directory, names=("D",), device=self.device).networks["D"]
                    if not isinstance(D, Discriminator):
                        raise CheckpointError(f"D of {self.directory} is not a discriminator")
                    self._D = D
        return self._D

    def classifier(self) -> FeatureNet:
        """The domain classifier (fashion_features): category / colour / gender / view of an image."""
        if self._classifier is None:
            with self._lock:
                if self._classifier is None:
                    from tryon.feature_net import load_feature_net

                    path = self.features_dir or self._default_features_dir()
                    if not (path / "config.json").is_file():
                        raise CheckpointError(f"no domain classifier at {path} (a fashion_features checkpoint)")
                    self._classifier = load_feature_net(path, device=self.device)
        return self._classifier

    def _default_features_dir(self) -> Path:
        """`fashion_features` beside the checkpoint folder (as in tryon/assets), else the shipped one."""
        if self.directory is not None:
            beside = self.directory.parent / "fashion_features"
            if (beside / "config.json").is_file():
                return beside
        return SHIPPED_FEATURES


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MAX_SEED:
        raise InputError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")


def check_truncation(psi: float) -> None:
    if isinstance(psi, bool) or not isinstance(psi, int | float) or not 0.0 <= float(psi) <= MAX_TRUNCATION:
        raise InputError(f"truncation must be a number in 0..{MAX_TRUNCATION} (1 = none), got {psi!r}")
