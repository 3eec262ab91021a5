"""Label schemas: the names of the condition vector `c` of a conditional generator.

A schema lays `c` out as concatenated one-hot blocks, one per column (e.g. article-type group,
colour group, gender, view). Datasets write it (`label_schema.json` in the zip), checkpoints carry
it (`config.json`), and the CLI/API read names through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tryon.errors import InputError, LabelSchemaError

OTHER = "other"  # The value that collects rare and missing values of a column.
LABEL_DISTRIBUTION_FILE = "label_distribution.json"  # Beside a checkpoint's config.json (see LabelDistribution).


@dataclasses.dataclass(frozen=True)
class LabelColumn:
    """One categorical label: a one-hot block `c[offset : offset + len(values)]`."""

    name: str                       # E.g. "articleType".
    values: tuple[str, ...]         # E.g. ("Tshirts", "Shirts", ...), in one-hot order.
    offset: int                     # Index of the first value in the condition vector.


@dataclasses.dataclass(frozen=True)
class LabelSchema:
    """The condition vector of a conditional G: concatenated one-hot blocks, one per column.

    Read from a checkpoint's `label_schema` by `LabelSchema.from_json`, which accepts:

    - `{"columns": [{"name": str, "values": [...], "offset": int?}, ...], "dim": int?}`, or
    - `{"columns": {name: [values...] | {"values": [...], "offset": int?}, ...}, "dim": int?}`.

    Values may be strings or numbers (compared as strings). A missing `offset` follows the previous
    column; a missing `dim` is the end of the last column. Other keys are ignored.
    """

    columns: tuple[LabelColumn, ...]
    dim: int

    @classmethod
    def from_json(cls, raw: Any) -> LabelSchema:
        if not isinstance(raw, Mapping) or "columns" not in raw:
            raise LabelSchemaError("label_schema must be an object with a 'columns' entry")
        raw_columns = raw["columns"]
        items: list[tuple[Any, Any]]
        if isinstance(raw_columns, Mapping):
            items = list(raw_columns.items())
        elif isinstance(raw_columns, list):
            items = []
            for entry in raw_columns:
                if not isinstance(entry, Mapping) or "name" not in entry:
                    raise LabelSchemaError("label_schema: every column needs a 'name'")
                items.append((entry["name"], entry))
        else:
            raise LabelSchemaError("label_schema: 'columns' must be a list or an object")
        columns: list[LabelColumn] = []
        next_offset = 0
        for name, entry in items:
            values_raw = entry.get("values") if isinstance(entry, Mapping) else entry
            offset = entry.get("offset") if isinstance(entry, Mapping) else None
            if not isinstance(name, str) or not name:
                raise LabelSchemaError(f"label_schema: bad column name {name!r}")
            if not isinstance(values_raw, list) or not values_raw:
                raise LabelSchemaError(f"label_schema: column {name!r} needs a non-empty list of values")
            if not all(isinstance(v, str | int | float | bool) for v in values_raw):
                raise LabelSchemaError(f"label_schema: column {name!r} has values that are not strings")
            values = tuple(str(v) for v in values_raw)
            if len(set(values)) != len(values):
                raise LabelSchemaError(f"label_schema: column {name!r} repeats a value")
            offset = next_offset if offset is None else offset
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise LabelSchemaError(f"label_schema: column {name!r} has a bad offset {offset!r}")
            columns.append(LabelColumn(name=name, values=values, offset=offset))
            next_offset = offset + len(values)
        if len({c.name for c in columns}) != len(columns):
            raise LabelSchemaError("label_schema: a column name appears twice")
        end = max(c.offset + len(c.values) for c in columns) if columns else 0
        dim = raw.get("dim", end)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < end:
            raise LabelSchemaError(f"label_schema: dim {dim!r} is smaller than the columns need ({end})")
        used = np.zeros([dim], dtype=bool)
        for col in columns:
            block = used[col.offset : col.offset + len(col.values)]
            if block.any():
                raise LabelSchemaError(f"label_schema: column {col.name!r} overlaps another column")
            block[:] = True
        return cls(columns=tuple(columns), dim=dim)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [{"name": c.name, "values": list(c.values), "offset": c.offset} for c in self.columns],
            "dim": self.dim,
        }

    def column(self, name: str) -> LabelColumn:
        for col in self.columns:
            if col.name == name:
                return col
        folded = [c for c in self.columns if c.name.casefold() == name.casefold()]
        if len(folded) == 1:
            return folded[0]
        known = ", ".join(c.name for c in self.columns)
        raise InputError(f"unknown label {name!r}; the labels are: {known}")

    def index(self, name: str, value: str) -> int:
        """Position in the condition vector of `name=value` (names and values match exactly, or
        else case-insensitively when that is unambiguous)."""
        col = self.column(name)
        if value in col.values:
            return col.offset + col.values.index(value)
        folded = [i for i, v in enumerate(col.values) if v.casefold() == value.casefold()]
        if len(folded) == 1:
            return col.offset + folded[0]
        shown = ", ".join(col.values[:30]) + (", ..." if len(col.values) > 30 else "")
        raise InputError(f"unknown value {value!r} for label {col.name!r}; its values are: {shown}")

    def encode(self, labels: Mapping[str, str], unknown: str = "error") -> np.ndarray:
        """{name: value} -> condition vector float32 [dim] (one 1 per given column, zeros elsewhere).

        unknown: "error" raises InputError for a value a column does not list; "other" maps it to
            the column's "other" value (as dataset tools do for rare values) and raises only when
            the column has none.
        """
        if unknown not in ("error", "other"):
            raise ValueError(f"unknown must be 'error' or 'other', got {unknown!r}")
        c = np.zeros([self.dim], dtype=np.float32)
        for name, value in labels.items():
            col = self.column(name)
            if unknown == "other" and value not in col.values and OTHER in col.values:
                value = OTHER
            c[self.index(name, value)] = 1
        return c

    def decode(self, c: Iterable[float]) -> dict[str, str | None]:
        """Condition vector [dim] -> {name: value} (argmax per column; None where a block is all 0)."""
        vec = np.asarray(c if isinstance(c, np.ndarray) else list(c), dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise InputError(f"label vector has {vec.shape[0]} entries, the schema {self.dim}")
        out: dict[str, str | None] = {}
        for col in self.columns:
            block = vec[col.offset : col.offset + len(col.values)]
            out[col.name] = col.values[int(np.argmax(block))] if block.size and block.max() > 0 else None
        return out


@dataclasses.dataclass(frozen=True)
class LabelDistribution:
    """How often each label combination occurs in a generator's training set, most frequent first.

    Kept in a checkpoint's training record (`config.json` "training" → "label_distribution"):
    `{"total": int, "combinations": [{"labels": {name: value}, "count": int}, ...]}` — so that a caller
    who names no label can be given combinations the generator has seen in number, in proportion.
    """

    combinations: tuple[tuple[Mapping[str, str], int], ...]     # ({name: value}, count), most frequent first.
    total: int                                                  # Images in the training set.

    @classmethod
    def from_vectors(cls, schema: LabelSchema, c: np.ndarray) -> LabelDistribution:
        """Count the rows of c [N, dim] (one condition vector per training image)."""
        c = np.asarray(c, dtype=np.float32).reshape(-1, schema.dim)
        uniq, counts = np.unique(c, axis=0, return_counts=True)
        decoded = []
        for row, n in zip(uniq, counts, strict=True):
            decoded.append(({k: v for k, v in schema.decode(row).items() if v is not None}, int(n)))
        # Ties are ordered by the labels' text, so that the same data gives the same list.
        decoded.sort(key=lambda t: (-t[1], sorted(t[0].items())))
        return cls(combinations=tuple(decoded), total=int(c.shape[0]))

    @classmethod
    def from_json(cls, raw: Any) -> LabelDistribution:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("combinations"), list):
            raise LabelSchemaError("label_distribution must be an object with a 'combinations' list")
        combinations = []
        for entry in raw["combinations"]:
            labels, count = entry.get("labels") if isinstance(entry, Mapping) else None, entry.get("count")
            if not isinstance(labels, Mapping) or not isinstance(count, int) or count < 0:
                raise LabelSchemaError(f"label_distribution: bad entry {entry!r} (needs 'labels' and a 'count')")
            combinations.append(({str(k): str(v) for k, v in labels.items()}, count))
        if not combinations or not sum(n for _, n in combinations):
            raise LabelSchemaError("label_distribution: no combination has a count")
        total = raw.get("total", sum(n for _, n in combinations))
        return cls(combinations=tuple(combinations), total=int(total))

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """top: keep only the `top` most frequent combinations (the total stays the whole set's)."""
        kept = self.combinations[:top] if top is not None else self.combinations
        return {"total": self.total, "combinations": [{"labels": dict(lb), "count": n} for lb, n in kept]}

    def count(self, labels: Mapping[str, str]) -> int:
        """Images whose labels include all of `labels` (e.g. {"articleGroup": "tops", "view": "flat"})."""
        return sum(n for combination, n in self.combinations if all(combination.get(k) == v for k, v in labels.items()))

    def sample(self, rng: np.random.RandomState) -> dict[str, str]:
        """One combination, drawn in proportion to its count."""
        counts = np.array([n for _, n in self.combinations], dtype=np.float64)
        return dict(self.combinations[int(rng.choice(len(counts), p=counts / counts.sum()))][0])


def recorded_distribution(directory: Path, training: Mapping[str, Any] | None) -> LabelDistribution | None:
    """The label distribution of a checkpoint's training data: its config's training record
    ("label_distribution"), else LABEL_DISTRIBUTION_FILE beside it; None when neither is there."""
    import json

    raw = (training or {}).get("label_distribution")
    beside = Path(directory) / LABEL_DISTRIBUTION_FILE
    if raw is None and beside.is_file():
        try:
            raw = json.loads(beside.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabelSchemaError(f"{beside} is not readable JSON: {exc}") from exc
    return LabelDistribution.from_json(raw) if raw is not None else None
