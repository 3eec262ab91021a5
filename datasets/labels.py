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

from tryon.errors import InputError

OTHER = "other"
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
    c = np.zeros([int(schema["dim"])], dtype=np.float32)
    for col in schema["columns"]:
        values: list[str] = col["values"]
        value = row.get(col["name"])
        if value is None:
            continue
        if value in values:
            index = values.index(value)
        elif OTHER in values:
            index = values.index(OTHER)
        else:
            raise InputError(f"label {col['name']!r}: value {value!r} is not one of {values}")
        c[int(col["offset"]) + index] = 1.0
    return c


def decode_labels(schema: Mapping[str, Any], c: Iterable[float]) -> dict[str, str | None]:
    """Label vector [dim] -> {column: value} (None for a column whose entries are all zero)."""
    vec = np.asarray(list(c) if not isinstance(c, np.ndarray) else c, dtype=np.float32).reshape(-1)
    if vec.shape[0] != int(schema["dim"]):
        raise ValueError(f"label vector has {vec.shape[0]} entries, the schema {schema['dim']}")
    out: dict[str, str | None] = {}
    for col in schema["columns"]:
        block = vec[int(col["offset"]) : int(col["offset"]) + len(col["values"])]
        out[col["name"]] = str(col["values"][int(np.argmax(block))]) if block.size and block.max() > 0 else None
    return out


def validate_schema(schema: Any) -> dict[str, Any]:
    """Check the shape documented above; returns the schema. Raises InputError when malformed."""
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), list) or "dim" not in schema:
        raise InputError("label_schema.json must be an object with 'columns' (a list) and 'dim'")
    end = 0
    seen = set()
    for col in schema["columns"]:
        if not isinstance(col, dict) or not isinstance(col.get("name"), str) or not isinstance(col.get("values"), list):
            raise InputError(f"label_schema.json: bad column entry {col!r}")
        if col["name"] in seen:
            raise InputError(f"label_schema.json: column {col['name']!r} appears twice")
        seen.add(col["name"])
        offset = col.get("offset")
        if not isinstance(offset, int) or offset < end:
            raise InputError(f"label_schema.json: column {col['name']!r} has a bad or overlapping offset {offset!r}")
        end = offset + len(col["values"])
    if not isinstance(schema["dim"], int) or schema["dim"] < end:
        raise InputError(f"label_schema.json: dim {schema['dim']!r} is smaller than its columns need ({end})")
    return schema
