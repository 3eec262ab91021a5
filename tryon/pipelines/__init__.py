"""The user-level fashion operations: each one call with checked inputs returning a result dataclass.

- `FashionPipeline.generate_outfit(...)` -> list[OutfitResult] (tryon.pipelines.outfits)
- `garment_variants(pipe, base, mode, ...)` -> list[OutfitResult] (tryon.pipelines.variants)
- `garment_transfer(pipe, photo, ...)` -> TransferResult (tryon.pipelines.transfer)

Compositing and try-on live beside them (tryon.pipelines.composite, tryon.pipelines.tryon).
Importing this package loads no model.
"""

from tryon.pipelines.outfits import (
    FIELD_ALIASES,
    LAYER_GROUPS,
    MAX_SEED,
    FashionPipeline,
    OutfitResult,
    OutfitSpec,
)
from tryon.pipelines.transfer import TransferResult, frame_garment_photo, garment_transfer
from tryon.pipelines.variants import VARIANT_MODES, garment_variants

__all__ = [
    "FIELD_ALIASES",
    "LAYER_GROUPS",
    "MAX_SEED",
    "VARIANT_MODES",
    "FashionPipeline",
    "OutfitResult",
    "OutfitSpec",
    "TransferResult",
    "frame_garment_photo",
    "garment_transfer",
    "garment_variants",
]
