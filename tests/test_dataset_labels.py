"""Label schemas, label files and the built-in label groups."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR, require_shared

from datasets.groups import ARTICLE_GROUPS, COLOUR_GROUPS, builtin_groups, load_groups
from datasets.labels import OTHER, build_schema, decode_labels, encode_labels, normalize_value, validate_schema
from datasets.sources import class_folder_table, read_celeba_attributes, read_label_csv, select_columns
from tryon.errors import InputError

DATA = Path(__file__).parent / "data"


def rows(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"articleType": a, "view": v} for a, v in pairs]


def test_schema_orders_by_count_and_folds_rare_values_into_other() -> None:
    data = rows(
        ("Shirts", "flat"), ("Tshirts", "on_model"), ("Tshirts", "flat"), ("Shirts", "flat"),
        ("Tshirts", "flat"), ("Jeans", "on_model"), ("other", "flat"),
    )  # fmt: skip
    schema = build_schema(data, ["articleType", "view"], min_count=2, fixed_values={"view": ["flat", "on_model"]})
    assert schema["columns"][0]["values"] == ["Tshirts", "Shirts", OTHER]
    assert schema["columns"][0]["counts"] == [3, 2, 2]  # Jeans (1) and a missing value share "other".
    assert schema["columns"][1] == {"name": "view", "values": ["flat", "on_model"], "offset": 3, "counts": [5, 2]}
    assert schema["dim"] == 5
    c = encode_labels(schema, {"articleType": "Jeans", "view": "on_model"})
    assert c.dtype == np.float32 and c.tolist() == [0, 0, 1, 0, 1]
    assert decode_labels(schema, c) == {"articleType": OTHER, "view": "on_model"}
    assert validate_schema(json.loads(json.dumps(schema))) == schema


def test_schema_reads_in_the_checkpoint_label_reader() -> None:
    """`tryon generate --label articleType=Tshirts` reads the same JSON through tryon.checkpoint."""
    checkpoint = pytest.importorskip("tryon.checkpoint")
    schema = build_schema(rows(("Tshirts", "flat"), ("Shirts", "on_model")), ["articleType", "view"],
                          fixed_values={"view": ["flat", "on_model"]})  # fmt: skip
    parsed = checkpoint.LabelSchema.from_json(schema)
    c = parsed.encode({"articleType": "Shirts", "view": "on_model"})
    assert np.array_equal(c, encode_labels(schema, {"articleType": "Shirts", "view": "on_model"}))


def test_schema_errors() -> None:
    with pytest.raises(InputError, match="fixed values"):
        build_schema(rows(("a", "side")), ["view"], fixed_values={"view": ["flat", "on_model"]})
    with pytest.raises(InputError, match="min-count"):
        build_schema([], ["view"], min_count=0)
    with pytest.raises(InputError, match="overlap"):
        validate_schema({"columns": [{"name": "a", "values": ["x", "y"], "offset": 0},
                                     {"name": "b", "values": ["z"], "offset": 1}], "dim": 3})  # fmt: skip


def test_missing_values_become_other() -> None:
    assert [normalize_value(v) for v in ["", " NA ", "n/a", None, "Navy  Blue"]] == [
        OTHER,
        OTHER,
        OTHER,
        OTHER,
        "Navy Blue",
    ]


def test_csv_rows_match_photos_by_path_name_or_stem(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "file,identity,smiling\nAJ_Cook/AJ_Cook_0001.jpg,AJ_Cook,1\n10001,x,\nb.png,y,0,extra,commas\n",
        encoding="utf-8",
    )
    table = read_label_csv(path)
    assert table.columns == ["identity", "smiling"]
    assert table.lookup("AJ_Cook/AJ_Cook_0001.jpg") == {"identity": "AJ_Cook", "smiling": "1"}
    assert table.lookup("images/10001.jpg") == {"identity": "x", "smiling": OTHER}  # By stem.
    assert table.lookup("sub/b.png") == {"identity": "y", "smiling": "0,extra,commas"}
    assert table.lookup("nope.jpg") is None
    with pytest.raises(InputError, match="no column"):
        read_label_csv(path, id_column="id")
    with pytest.raises(InputError, match="not found"):
        read_label_csv(tmp_path / "missing.csv")


def test_styles_csv_fixture_and_column_selection() -> None:
    table = read_label_csv(DATA / "fashion" / "styles.csv")
    assert table.lookup("10057.jpg") is not None and table.lookup("10057.jpg")["articleType"] == "Tshirts"  # type: ignore[index]
    assert select_columns(table, None, ["articleType", "baseColour", "gender"]) == [
        "articleType",
        "baseColour",
        "gender",
    ]
    assert select_columns(table, ["usage"], ["articleType"]) == ["usage"]
    assert select_columns(table, ["articleGroup"], [], derived=["articleGroup"]) == ["articleGroup"]
    with pytest.raises(InputError, match="no label column"):
        select_columns(table, ["colour"], [])


def test_celeba_attributes_become_yes_no_columns() -> None:
    table = read_celeba_attributes(DATA / "faces" / "celeba" / "list_attr_celeba.txt")
    assert len(table.columns) == 40 and table.fixed_values["Smiling"] == ["no", "yes"]
    assert table.lookup("000001.jpg")["Smiling"] == "yes"  # type: ignore[index]
    assert table.lookup("000002.jpg")["Male"] == "no"  # type: ignore[index]


def test_class_folders() -> None:
    table = class_folder_table(["shirts/a.jpg", "dresses/b.jpg"])
    assert table is not None and table.lookup("dresses/b.jpg") == {"class": "dresses"}
    assert class_folder_table(["a.jpg", "shirts/b.jpg"]) is None


def test_builtin_groups(tmp_path: Path) -> None:
    g = builtin_groups()
    assert g.value("articleGroup", {"articleType": "Tshirts"}) == "tops"
    assert g.value("articleGroup", {"articleType": "Casual Shoes"}) == "footwear"
    assert g.value("articleGroup", {"articleType": "Brand New Thing", "masterCategory": "Footwear"}) == "footwear"
    assert g.value("articleGroup", {"articleType": "Footballs"}) == OTHER
    assert g.value("colourGroup", {"baseColour": "Navy Blue"}) == "blue"
    assert g.value("colourGroup", {"baseColour": OTHER}) == OTHER
    custom = tmp_path / "groups.json"
    custom.write_text(json.dumps({"fit": {"from": "articleType", "map": {"Jeans": "bottom"}}}))
    assert load_groups(str(custom)).value("fit", {"articleType": "Jeans"}) == "bottom"
    with pytest.raises(InputError, match="neither"):
        load_groups("nonsense")


def test_builtin_groups_cover_the_catalog() -> None:
    styles = require_shared(DATA_DIR / "fashion_products" / "styles.csv")
    with styles.open(encoding="utf-8", errors="replace") as f:
        data = list(csv.DictReader(f))
    g = builtin_groups()
    unmapped_types = {r["articleType"] for r in data if g.value("articleGroup", r) == OTHER}
    assert unmapped_types <= {"Free Gifts", "Footballs"}, unmapped_types
    unmapped_colours = {r["baseColour"] for r in data if g.value("colourGroup", r) == OTHER}
    assert unmapped_colours <= {"NA"}, unmapped_colours
    assert set(ARTICLE_GROUPS) >= {"tops", "bottoms", "dresses", "outerwear", "footwear", "bags", "accessories"}
    assert set(COLOUR_GROUPS) >= {"black", "white", "grey", "blue", "red", "green", "yellow", "brown", "pink",
                                  "purple", "orange", "multi"}  # fmt: skip


def test_readme_group_tables_match_the_code() -> None:
    readme = (Path(__file__).resolve().parents[1] / "datasets" / "README.md").read_text(encoding="utf-8")
    for groups in (ARTICLE_GROUPS, COLOUR_GROUPS):
        for group, values in groups.items():
            assert f"| {group} | {', '.join(values)} |" in readme, f"datasets/README.md is out of date for {group!r}"
