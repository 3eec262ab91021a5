"""Dataset tools: catalog and face photos to aligned, labelled training zips.

    tryon dataset fashion | faces | viton | info     (datasets.cli)
    datasets.ImageZipDataset                          the torch Dataset the trainer reads

Importing this package is cheap: torch and mediapipe load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets.torch_dataset import ImageZipDataset

__all__ = ["ImageZipDataset"]


def __getattr__(name: str) -> Any:
    if name == "ImageZipDataset":
        from datasets.torch_dataset import ImageZipDataset

        return ImageZipDataset
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
