"""Label schemas: named columns -> one float label vector per image (concatenated one-hots).

The schema is stored in every dataset zip as `label_schema.json`, and later in checkpoints, so that
`tryon generate --label articleType=Tshirts` can find the right entry of the vector:

    {"columns": [{"name": "articleType", "values": ["Tshirts", "Shirts", ..., "other"], "offset": 0},
                 ...,
                 {"name": "view", "values": ["flat", "on_model"], "offset": 61}],
     "dim": 63}

Each column occupies len(values) entries starting at `offset`; an image has a 1 at the entry of its
value in each column and 0 elsewhere. Values are ordered by how many images have them (most first,
ties by name), except columns with fixed values (the view, yes/no attributes). Values with fewer than
`min_count` images are folded into "other", which is then the last value; so are missing values
(empty, NA). Extra keys may be added to the schema (readers ignore them): here "counts" per column.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tryon.errors import InputError, LabelSchemaError
from tryon.labels import OTHER, LabelSchema

VIEW_COLUMN = "view"
VIEW_VALUES = ("flat", "on_model")
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "none", "null", "-"})


def normalize_value(value: object) -> str:
    """A raw cell -> label value: stripped text; missing cells (empty, NA, ...) -> "other"."""
    text = " ".join(str(value if value is not None else "").split())
    return OTHER if text.casefold() in MISSING_VALUES else text


def build_schema(
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    *,
    min_count: int = 1,
    fixed_values: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The label schema for `rows` (one {column: value} per kept image).

    columns: the label columns, in vector order.
    min_count: values seen fewer times than this go to "other".
    fixed_values: {column: values} for columns whose values and order are fixed (e.g. the view);
        they ignore min_count, and a value outside the list is an error.
    """
    if min_count < 1:
        raise InputError(f"--min-count must be at least 1, got {min_count}")
    fixed_values = dict(fixed_values or {})
    if len(set(columns)) != len(columns):
        raise InputError(f"a label column is listed twice: {list(columns)}")
    out_columns = []
    offset = 0
    for name in columns:
        counts = collections.Counter(row[name] for row in rows)
        if name in fixed_values:
            values = [str(v) for v in fixed_values[name]]
            unknown = sorted(set(counts) - set(values))
            if unknown:
                raise InputError(f"label {name!r} has values {unknown} outside its fixed values {values}")
        else:
            common = [v for v, n in counts.items() if n >= min_count and v != OTHER]
            values = sorted(common, key=lambda v: (-counts[v], v))
            if len(values) < len(counts):  # Some rare or missing values: they share "other".
                values.append(OTHER)
            if not values:
                values = [OTHER]
        folded: dict[str, int] = collections.Counter()
        for v, n in counts.items():
            folded[v if v in values else OTHER] += n
        out_columns.append(
            {
                "name": name,
                "values": values,
                "offset": offset,
                "counts": [int(folded.get(v, 0)) for v in values],
            }
        )
        offset += len(values)
    return {"columns": out_columns, "dim": offset}


def encode_labels(schema: Mapping[str, Any], row: Mapping[str, str]) -> np.ndarray:
    """{column: value} -> label vector float32 [dim]. Values not in a column's list go to "other"."""
    return LabelSchema.from_json(schema).encode(row, unknown="other")


def decode_labels(schema: Mapping[str, Any], c: Iterable[float]) -> dict[str, str | None]:
    """Label vector [dim] -> {column: value} (None for a column whose entries are all zero)."""
    return LabelSchema.from_json(schema).decode(c)


def validate_schema(schema: Any) -> dict[str, Any]:
    """Check the shape documented above (`tryon.labels.LabelSchema`); returns the schema.

    Raises InputError (LabelSchemaError) when malformed; unlike checkpoints, a dataset's schema
    must spell out every offset and the dim.
    """
    if not isinstance(schema, dict) or "dim" not in schema or not isinstance(schema.get("columns"), list):
        raise LabelSchemaError("label_schema.json must be an object with 'columns' (a list) and 'dim'")
    if any(not isinstance(col, dict) or "offset" not in col for col in schema["columns"]):
        raise LabelSchemaError("label_schema.json: every column needs a 'name', 'values' and an 'offset'")
    LabelSchema.from_json(schema)
    return schema
