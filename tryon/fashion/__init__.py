"""The user-level fashion operations: each one call with checked inputs returning a result dataclass.

- `FashionPipeline.generate_outfit(...)` -> list[OutfitResult] (tryon.fashion.outfits)
- `garment_variants(pipe, base, mode, ...)` -> list[OutfitResult] (tryon.fashion.variants)
- `garment_transfer(pipe, photo, ...)` -> TransferResult (tryon.fashion.transfer)
- `verify_catalog(pipe, plan, candidates=16)` -> list[CatalogPick]: the generated catalog, each item
  kept only when the fashion feature network reads its labels (tryon.fashion.catalog)

Compositing and try-on live beside them (tryon.composite, tryon.pipelines).
Importing this package loads no model.
"""

from tryon.fashion.catalog import CatalogPick, verify_catalog
from tryon.fashion.outfits import (
    FIELD_ALIASES,
    MAX_SEED,
    FashionPipeline,
    OutfitResult,
    OutfitSpec,
)
from tryon.fashion.transfer import TransferResult, frame_garment_photo, garment_transfer
from tryon.fashion.variants import VARIANT_MODES, garment_variants
from tryon.nn.layer_groups import LAYER_GROUPS

__all__ = [
    "FIELD_ALIASES",
    "LAYER_GROUPS",
    "MAX_SEED",
    "VARIANT_MODES",
    "CatalogPick",
    "FashionPipeline",
    "OutfitResult",
    "OutfitSpec",
    "TransferResult",
    "frame_garment_photo",
    "garment_transfer",
    "garment_variants",
    "verify_catalog",
]
