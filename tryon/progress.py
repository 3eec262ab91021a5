"""Progress bars of long CLI work (dataset builds, product imports): tqdm on stderr, or nothing."""

from __future__ import annotations

import sys
from typing import Any


class NoBar:
    """A progress bar that shows nothing (progress off, or a background job)."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, *, unit: str, enabled: bool = True) -> Any:
    """A tqdm bar over `total` `unit`s on stderr when `enabled`, else a NoBar (same methods)."""
    if not enabled:
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, smoothing=0.05)
