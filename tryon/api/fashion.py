"""The fashion generator as a service: loaded lazily, label requests checked, generation batched.

Outfit requests name labels of the checkpoint's label schema (`GET /v1/labels`), either directly
(`labels={"articleType": "Tshirts"}`) or through the friendly fields category / colour / gender /
view, which map onto the schema's columns by name (`FIELD_ALIASES`).

Latents follow `tryon generate` (NVlabs' generate.py): z = RandomState(seed).randn(z_dim) and const
noise, so an outfit here is the image the CLI makes for the same checkpoint, labels, seed and
truncation. Concurrent requests run as one forward pass (`DynamicBatcher`); each sample keeps its
own truncation.

When `tryon.fashion` (the outfit pipeline) lands, `generate_batch` is where it plugs in.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tryon.api.batching import DynamicBatcher
from tryon.errors import CheckpointError, InputError, TryonError

if TYPE_CHECKING:
    from tryon.config import Settings
    from tryon.labels import LabelSchema
    from tryon.nn import Generator

log = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1                    # np.random.RandomState accepts 0 .. 2**32 - 1.

# Friendly request fields -> label schema column names they may stand for (first match wins,
# compared case-insensitively).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "category": ("category", "articleGroup", "articleType", "article_type", "subCategory", "masterCategory"),
    "colour": ("colour", "color", "colourGroup", "baseColour", "baseColor", "base_colour"),
    "gender": ("gender", "sex"),
    "view": ("view", "pose"),
}


class ModelUnavailableError(TryonError):
    """No model to serve (none configured, or it cannot be loaded). The API answers 503."""


@dataclasses.dataclass(frozen=True)
class OutfitSpec:
    """One checked outfit request: schema labels, seed, truncation."""

    labels: dict[str, str]              # {schema column name: value}, canonical spelling.
    seed: int                           # 0 .. 2**32 - 1.
    truncation: float                   # psi: 1 = none, 0 = the average outfit.


@dataclasses.dataclass
class FashionModel:
    """A loaded fashion generator."""

    directory: Path
    G: Generator
    schema: LabelSchema | None          # None: the checkpoint names no labels.
    checkpoint_id: str                  # sha256 of config.json (it holds the weights' sha256s).
    device: str
    load_seconds: float

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)


class FashionService:
    """Loads the fashion G on first use and generates outfits in dynamic batches."""

    def __init__(
        self,
        settings: Settings,
        on_batch: Callable[[int, float], None] | None = None,  # Metrics hook (batch size, seconds).
    ) -> None:
        self.settings = settings
        self.checkpoint_dir = settings.resolved_fashion_checkpoint
        self._model: FashionModel | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.batcher: DynamicBatcher[OutfitSpec, np.ndarray] = DynamicBatcher(
            self.generate_batch,
            max_batch_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            name="fashion-batcher",
            on_batch=on_batch,
        )

    # --- Model ----------------------------------------------------------------------------------------

    def model(self) -> FashionModel:
        """The loaded model (loading it on first call). Raises ModelUnavailableError with the reason."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> FashionModel:
        if self.checkpoint_dir is None:
            raise ModelUnavailableError(
                "no fashion model is installed: set TRYON_FASHION_CHECKPOINT to a checkpoint folder "
                "(or ship one in tryon/assets/fashion)"
            )
        from tryon.checkpoint import CONFIG_FILE, load_checkpoint
        from tryon.labels import LabelSchema
        from tryon.nn import Generator

        device = self.settings.torch_device()
        started = time.perf_counter()
        try:
            ckpt = load_checkpoint(self.checkpoint_dir, names=("G_ema",), device=device)
            config_bytes = (Path(self.checkpoint_dir) / CONFIG_FILE).read_bytes()
            G = ckpt.networks["G_ema"]
            schema = LabelSchema.from_json(ckpt.label_schema) if ckpt.label_schema else None
        except (CheckpointError, InputError, OSError, KeyError) as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise ModelUnavailableError(f"the fashion model at {self.checkpoint_dir} cannot be loaded: {exc}") from exc
        if not isinstance(G, Generator):
            raise ModelUnavailableError(f"G_ema of {self.checkpoint_dir} is not a generator")
        if schema is not None and schema.dim != int(G.c_dim):
            raise ModelUnavailableError(
                f"the fashion model's label schema has {schema.dim} entries but its generator takes {G.c_dim}"
            )
        # One forward pass at load time builds (or loads) the compiled ops, so that the first
        # request does not pay for it.
        import torch

        with torch.no_grad():
            c = torch.zeros([1, int(G.c_dim)], device=device) if G.c_dim else None
            G(torch.zeros([1, int(G.z_dim)], device=device), c, noise_mode="const")
        model = FashionModel(
            directory=Path(self.checkpoint_dir),
            G=G,
            schema=schema,
            checkpoint_id=hashlib.sha256(config_bytes).hexdigest(),
            device=str(device),
            load_seconds=time.perf_counter() - started,
        )
        self._error = None
        log.info(
            "fashion model loaded from %s in %.2f s (%d px, c_dim %d, %s)",
            model.directory,
            model.load_seconds,
            model.resolution,
            int(G.c_dim),
            model.device,
        )
        return model

    def status(self) -> dict[str, Any]:
        """For /health: loaded or not, and why not."""
        if self._model is not None:
            m = self._model
            return {
                "status": "loaded",
                "checkpoint": str(m.directory),
                "checkpoint_id": m.checkpoint_id,
                "resolution": m.resolution,
                "device": m.device,
                "load_seconds": round(m.load_seconds, 3),
            }
        if self.checkpoint_dir is None:
            return {"status": "unavailable", "detail": "no fashion checkpoint configured (TRYON_FASHION_CHECKPOINT)"}
        if self._error is not None:
            return {"status": "unavailable", "checkpoint": str(self.checkpoint_dir), "detail": self._error}
        return {"status": "not_loaded", "checkpoint": str(self.checkpoint_dir), "detail": "loads on first use"}

    # --- Requests -------------------------------------------------------------------------------------

    def field_columns(self) -> dict[str, str]:
        """{friendly field: schema column} for the fields this model has."""
        schema = self.model().schema
        if schema is None:
            return {}
        by_folded = {col.name.casefold(): col.name for col in schema.columns}
        out = {}
        for field, aliases in FIELD_ALIASES.items():
            for alias in aliases:
                if alias.casefold() in by_folded:
                    out[field] = by_folded[alias.casefold()]
                    break
        return out

    def resolve(
        self, *, fields: Mapping[str, str | None], labels: Mapping[str, str], seed: int, truncation: float
    ) -> OutfitSpec:
        """Check a request against the model's labels. Raises InputError (400) with what is allowed."""
        model = self.model()
        if not 0 <= seed <= MAX_SEED:
            raise InputError(f"seed must be in 0..{MAX_SEED}")
        given = {k: v for k, v in fields.items() if v is not None}
        if model.schema is None:
            if int(model.G.c_dim) > 0:
                raise ModelUnavailableError("the fashion model is conditional but names no labels; it cannot be served")
            if given or labels:
                raise InputError("this fashion model is unconditional: it takes no labels")
            return OutfitSpec(labels={}, seed=seed, truncation=truncation)
        schema = model.schema
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
            if column in resolved and resolved[column].casefold() != value.casefold():
                raise InputError(f"label {column} is given twice with different values")
            resolved[column] = value
        canonical = {}
        for name, value in resolved.items():
            col = schema.column(name)
            canonical[col.name] = col.values[schema.index(name, value) - col.offset]
        if int(model.G.c_dim) > 0 and not canonical:
            names = ", ".join(c.name for c in schema.columns)
            raise InputError(f"give at least one label (category, colour, gender, view, or any of: {names})")
        return OutfitSpec(labels=canonical, seed=seed, truncation=truncation)

    def labels(self) -> dict[str, Any]:
        """The label schema with the friendly field each column answers to."""
        model = self.model()
        fields = {column: field for field, column in self.field_columns().items()}
        columns = []
        if model.schema is not None:
            for col in model.schema.columns:
                columns.append({"name": col.name, "field": fields.get(col.name), "values": list(col.values)})
        return {
            "checkpoint_id": model.checkpoint_id,
            "conditional": int(model.G.c_dim) > 0,
            "resolution": model.resolution,
            "columns": columns,
        }

    # --- Generation -----------------------------------------------------------------------------------

    def submit(self, spec: OutfitSpec) -> concurrent.futures.Future[np.ndarray]:
        """Queue one outfit for the next batch; the future gets uint8 [H, W, C]."""
        return self.batcher.submit(spec)

    async def generate(self, spec: OutfitSpec) -> np.ndarray:
        return await self.batcher.run(spec)

    def generate_batch(self, specs: Sequence[OutfitSpec]) -> list[np.ndarray]:
        """One forward pass for all `specs` -> uint8 images [H, W, C], in order."""
        import torch

        from tryon.imaging import to_uint8
        from tryon.ops import use_impl

        model = self.model()
        G = model.G
        z = np.stack([np.random.RandomState(s.seed).randn(int(G.z_dim)) for s in specs])
        c = np.zeros([len(specs), int(G.c_dim)], dtype=np.float32)
        if model.schema is not None:
            for i, spec in enumerate(specs):
                c[i] = model.schema.encode(spec.labels)
        psi = torch.tensor([s.truncation for s in specs], dtype=torch.float32, device=model.device)
        with torch.no_grad(), use_impl(self.settings.ops_impl):
            z_t = torch.from_numpy(z).to(torch.float32).to(model.device)
            c_t = torch.from_numpy(c).to(model.device) if int(G.c_dim) > 0 else None
            ws = G.mapping(z_t, c_t)
            if bool((psi != 1).any()):
                # Truncation per sample: w_avg + psi * (w - w_avg), as G.mapping does for one psi.
                ws = G.mapping.w_avg.lerp(ws, psi.reshape(-1, 1, 1))
            images = G.synthesis(ws, noise_mode="const")
        return list(to_uint8(images))

    def close(self) -> None:
        self.batcher.close()
