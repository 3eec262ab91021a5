"""The generated catalog, checked by our own eyes: an item is shown under a label only when the
domain feature network (tryon/assets/fashion_features, the classifier of `tryon metrics`'
conditional accuracy) reads that label in its image.

For each planned item (`FashionPipeline.catalog_specs`) up to `candidates` seeds are rendered, in a
fixed order, and the first whose image the classifier reads as the item's category and colour is
kept, with the classifier's probabilities of those labels as its score. An item that no candidate
passes is left out. The candidate seeds of the item at catalog position k are k, k + P, k + 2P, ...
(P = the plan's length): deterministic for a checkpoint, and no two items share a seed.

    pipe = FashionPipeline.from_checkpoint(None)
    picks = verify_catalog(pipe, pipe.catalog_specs(4), candidates=16)
    kept = [p for p in picks if p.kept]           # p.spec.seed, p.scores, p.tried
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tryon.errors import CheckpointError
from tryon.fashion.outfits import FashionPipeline, OutfitSpec

log = logging.getLogger(__name__)

CHECKED_FIELDS = ("category", "colour")  # What the classifier must read for an item to be shown.
DEFAULT_CANDIDATES = 16                  # Seeds tried per item before it is left out.
CANDIDATE_BATCH = 8                      # Candidates rendered and read per forward pass.


@dataclasses.dataclass
class CatalogPick:
    """One planned catalog item after the classifier's check."""

    name: str                           # The item's name (from the plan).
    spec: OutfitSpec                    # The kept candidate (its seed); the last one tried when none passed.
    kept: bool                          # The classifier read every checked label (or nothing could be checked).
    checked: tuple[str, ...]            # Label columns checked, e.g. ("articleGroup", "colourGroup"); () = unchecked.
    scores: dict[str, float]            # {column: the classifier's probability of the item's value} of `spec`.
    reading: dict[str, str]             # {column: the value the classifier reads} of `spec`.
    tried: int                          # Candidates rendered for the item (1 = its first seed passed).
    ws: np.ndarray                      # float32 [num_ws, w_dim] of `spec`.
    image: np.ndarray                   # uint8 [H, W, 3] of `spec`.

    def record(self) -> dict[str, Any]:
        """JSON for the item's metadata (`params["classifier"]`)."""
        return {
            "checked": list(self.checked),
            "kept": self.kept,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "reading": dict(self.reading),
            "candidates_tried": self.tried,
        }


def checked_columns(pipe: FashionPipeline) -> tuple[str, ...]:
    """The label columns of CHECKED_FIELDS that the generator's schema and the classifier both have
    (by column name). () without a classifier or a shared column: the catalog cannot be checked."""
    columns = pipe.field_columns()
    try:
        heads = {head.name for head in pipe.classifier().heads if not head.binary}
    except CheckpointError as exc:
        log.warning("the catalog is not checked by the classifier: %s", exc)
        return ()
    return tuple(columns[f] for f in CHECKED_FIELDS if f in columns and columns[f] in heads)


@torch.no_grad()
def read_labels(pipe: FashionPipeline, images: Sequence[np.ndarray]) -> list[dict[str, tuple[str, dict[str, float]]]]:
    """The classifier on uint8 [H, W, 3] images -> per image {column: (value read, {value: probability})}
    for its multi-class heads."""
    net = pipe.classifier()
    x = torch.from_numpy(np.stack(images).astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2).to(pipe.device)
    logits = net(x)[1]
    out: list[dict[str, tuple[str, dict[str, float]]]] = [{} for _ in images]
    for head, part in zip(net.heads, net.split_logits(logits), strict=True):
        if head.binary:
            continue
        probs = torch.softmax(part.float(), dim=1).cpu().numpy()
        for i, p in enumerate(probs):
            out[i][head.name] = (head.values[int(p.argmax())], dict(zip(head.values, map(float, p), strict=True)))
    return out


def candidate_seeds(position: int, plan_length: int, candidates: int) -> list[int]:
    """Seeds tried for the item at `position` of a plan of `plan_length` items, in order."""
    return [position + j * plan_length for j in range(candidates)]


def verify_catalog_item(
    pipe: FashionPipeline,
    name: str,                              # The item's name.
    spec: OutfitSpec,                       # Its labels and truncation (the seed is replaced).
    seeds: Sequence[int],                   # Candidate seeds, in the order they are tried.
    columns: Sequence[str],                 # Label columns the classifier must read (checked_columns).
) -> CatalogPick:
    """Render candidates of `spec` over `seeds` and keep the first whose image the classifier reads as
    spec's values of `columns`. With no columns the first seed is kept unchecked."""
    return _verify_items(pipe, [(name, spec, list(seeds))], columns)[0]


def verify_catalog(
    pipe: FashionPipeline,
    plan: Sequence[tuple[str, OutfitSpec]],  # [(name, spec)] from catalog_specs; spec.seed = its position.
    *,
    candidates: int = DEFAULT_CANDIDATES,   # Seeds tried per item; 0 = no check (each item's own seed, kept).
) -> list[CatalogPick]:
    """Check every planned item (see the module's docstring). Returns one pick per planned item, in
    plan order; `kept` says which the catalog shows."""
    if candidates < 0:
        raise ValueError(f"candidates must be >= 0, got {candidates}")
    columns = checked_columns(pipe) if candidates > 0 else ()
    items = [
        (name, spec, candidate_seeds(position, len(plan), candidates) if columns else [spec.seed])
        for position, (name, spec) in enumerate(plan)
    ]
    return _verify_items(pipe, items, columns)


def _verify_items(
    pipe: FashionPipeline, items: Sequence[tuple[str, OutfitSpec, list[int]]], columns: Sequence[str]
) -> list[CatalogPick]:
    """The check of (name, spec, seeds) items in rounds: round j renders the j-th seed of every item
    still undecided, CANDIDATE_BATCH images a forward pass across items, so that no more candidates
    are rendered than are tried."""
    if any(not seeds for _, _, seeds in items):
        raise ValueError("give at least one candidate seed per item")
    picks: list[CatalogPick | None] = [None] * len(items)
    for j in range(max((len(seeds) for _, _, seeds in items), default=0)):
        pending = [i for i, pick in enumerate(picks) if pick is None]
        for start in range(0, len(pending), CANDIDATE_BATCH):
            batch = pending[start : start + CANDIDATE_BATCH]
            specs = [dataclasses.replace(items[i][1], seed=int(items[i][2][j])) for i in batch]
            ws, images = pipe.generate_specs(specs)
            readings = read_labels(pipe, images) if columns else [{} for _ in batch]
            for k, (i, candidate, reading) in enumerate(zip(batch, specs, readings, strict=True)):
                wanted = {col: candidate.labels[col] for col in columns if col in candidate.labels}
                passed = all(reading[col][0] == value for col, value in wanted.items())
                if passed or j == len(items[i][2]) - 1:
                    picks[i] = CatalogPick(
                        name=items[i][0],
                        spec=candidate,
                        kept=passed,
                        checked=tuple(wanted),
                        scores={col: reading[col][1][value] for col, value in wanted.items()},
                        reading={col: reading[col][0] for col in wanted},
                        tried=j + 1,
                        ws=ws[k].cpu().numpy().astype(np.float32),
                        image=images[k],
                    )
    assert all(pick is not None for pick in picks)
    return [pick for pick in picks if pick is not None]


def kept_share(picks: Sequence[CatalogPick]) -> dict[str, Any]:
    """Of checked picks: items kept / planned, and candidates kept / rendered (the share of
    generated candidates the classifier agreed with)."""
    checked = [p for p in picks if p.checked]
    tried = sum(p.tried for p in checked)
    kept = sum(p.kept for p in checked)
    return {
        "items_planned": len(checked),
        "items_kept": kept,
        "candidates_rendered": tried,
        "candidates_kept_share": round(kept / tried, 4) if tried else None,
    }
