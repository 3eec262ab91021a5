"""Built-in label groups for catalog data (`tryon dataset fashion --groups builtin`).

The fashion model is conditioned on a few coarse, well-populated labels rather than 75 article types
and 45 colour names, most of which have a handful of photos. These tables fold the raw values of the
Fashion Product Images catalog (`styles.csv`) into groups. Two derived columns come from them:

| derived column | from |
|----------------|------|
| `articleGroup` | `articleType` (else `subCategory`, else `masterCategory`): tops, bottoms, dresses, sets, |
|                | outerwear, innerwear, footwear, bags, accessories, personal_care, other |
| `colourGroup`  | `baseColour`: black, white, grey, blue, red, green, yellow, brown, beige, pink, purple, |
|                | orange, metallic, multi, other |

A value missing from a table maps to `other`. The full tables are `ARTICLE_GROUPS` and `COLOUR_GROUPS`
below (one line per group, values sorted); `datasets/README.md` shows them too. A custom JSON file
of another shape can replace them: `{"articleGroup": {"from": "articleType", "map": {raw: group}}}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tryon.errors import InputError

OTHER = "other"

# group -> articleType values.
ARTICLE_GROUPS: dict[str, tuple[str, ...]] = {
    "tops": (
        "Camisoles", "Kurtas", "Kurtis", "Shirts", "Shrug", "Sweaters", "Sweatshirts", "Tops", "Tshirts",
        "Tunics", "Waistcoat",
    ),
    "bottoms": (
        "Capris", "Churidar", "Jeans", "Jeggings", "Leggings", "Lounge Pants", "Lounge Shorts", "Patiala",
        "Salwar", "Shorts", "Skirts", "Track Pants", "Trousers",
    ),
    "dresses": ("Dresses", "Jumpsuit", "Nightdress", "Rompers", "Sarees"),
    "sets": ("Kurta Sets", "Lehenga Choli", "Night suits", "Salwar and Dupatta", "Tracksuits"),
    "outerwear": ("Blazers", "Coats", "Jackets", "Nehru Jackets", "Rain Jacket", "Rain Trousers", "Suits"),
    "innerwear": ("Boxers", "Bra", "Briefs", "Innerwear Vests", "Shapewear", "Socks", "Stockings", "Tights", "Trunk"),
    "footwear": (
        "Booties", "Casual Shoes", "Flats", "Flip Flops", "Formal Shoes", "Heels", "Sandals", "Sports Sandals",
        "Sports Shoes",
    ),
    "bags": (
        "Backpacks", "Clutches", "Duffel Bag", "Handbags", "Laptop Bag", "Messenger Bag", "Mobile Pouch",
        "Rucksacks", "Tablet Sleeve", "Trolley Bag", "Waist Pouch",
    ),
    "accessories": (
        "Accessory Gift Set", "Belts", "Bracelet", "Caps", "Cufflinks", "Dupatta", "Earrings", "Gloves", "Hat",
        "Headband", "Jewellery Set", "Key chain", "Mufflers", "Necklace and Chains", "Pendant", "Ring",
        "Scarves", "Shoe Accessories", "Stoles", "Sunglasses", "Ties", "Ties and Cufflinks", "Travel Accessory",
        "Umbrellas", "Wallets", "Watches", "Wristbands",
    ),
    "personal_care": (
        "Deodorant", "Fragrance Gift Set", "Lip Gloss", "Lipstick", "Nail Polish", "Perfume and Body Mist",
    ),
}  # fmt: skip

# When articleType is not in the table: subCategory, then masterCategory -> group.
SUBCATEGORY_GROUPS: dict[str, str] = {
    "Topwear": "tops", "Bottomwear": "bottoms", "Dress": "dresses", "Saree": "dresses", "Apparel Set": "sets",
    "Innerwear": "innerwear", "Socks": "innerwear", "Loungewear and Nightwear": "sets", "Shoes": "footwear",
    "Sandal": "footwear", "Flip Flops": "footwear", "Bags": "bags", "Watches": "accessories",
    "Eyewear": "accessories", "Belts": "accessories", "Wallets": "accessories", "Jewellery": "accessories",
    "Headwear": "accessories", "Fragrance": "personal_care",
}  # fmt: skip
MASTER_CATEGORY_GROUPS: dict[str, str] = {
    "Footwear": "footwear", "Accessories": "accessories", "Personal Care": "personal_care",
}  # fmt: skip

# group -> baseColour values.
COLOUR_GROUPS: dict[str, tuple[str, ...]] = {
    "black": ("Black",),
    "white": ("Off White", "White"),
    "grey": ("Charcoal", "Grey", "Grey Melange"),
    "blue": ("Blue", "Navy Blue", "Teal", "Turquoise Blue"),
    "red": ("Burgundy", "Maroon", "Red"),
    "green": ("Fluorescent Green", "Green", "Lime Green", "Olive", "Sea Green"),
    "yellow": ("Mustard", "Yellow"),
    "brown": ("Brown", "Coffee Brown", "Mushroom Brown", "Tan", "Taupe"),
    "beige": ("Beige", "Cream", "Khaki", "Nude", "Skin"),
    "pink": ("Magenta", "Pink", "Rose"),
    "purple": ("Lavender", "Mauve", "Purple"),
    "orange": ("Orange", "Peach", "Rust"),
    "metallic": ("Bronze", "Copper", "Gold", "Metallic", "Rose Gold", "Silver", "Steel"),
    "multi": ("Multi",),
}

ARTICLE_GROUP_COLUMN = "articleGroup"
COLOUR_GROUP_COLUMN = "colourGroup"


def _invert(groups: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for group, values in groups.items():
        for v in values:
            assert v not in out, f"{v!r} is in two groups"
            out[v] = group
    return out


class GroupMapping:
    """Derived label columns: {derived column: (source column, {raw value: group}, fallbacks)}."""

    def __init__(self, derived: Mapping[str, tuple[str, Mapping[str, str], tuple[tuple[str, Mapping[str, str]], ...]]]):
        self.derived = dict(derived)

    def columns(self) -> list[str]:
        return list(self.derived)

    def source_of(self, column: str) -> str:
        return self.derived[column][0]

    def value(self, column: str, row: Mapping[str, str]) -> str:
        """The group of `row` for derived `column` (OTHER when the value is unknown or missing)."""
        source, table, fallbacks = self.derived[column]
        raw = (row.get(source) or "").strip()
        if raw in table:
            return table[raw]
        folded = {k.casefold(): v for k, v in table.items()}
        if raw.casefold() in folded:
            return folded[raw.casefold()]
        for fb_column, fb_table in fallbacks:
            fb = (row.get(fb_column) or "").strip()
            if fb in fb_table:
                return fb_table[fb]
        return OTHER


def builtin_groups() -> GroupMapping:
    """The tables above as derived columns `articleGroup` and `colourGroup`."""
    return GroupMapping(
        {
            ARTICLE_GROUP_COLUMN: (
                "articleType",
                _invert(ARTICLE_GROUPS),
                (("subCategory", SUBCATEGORY_GROUPS), ("masterCategory", MASTER_CATEGORY_GROUPS)),
            ),
            COLOUR_GROUP_COLUMN: ("baseColour", _invert(COLOUR_GROUPS), ()),
        }
    )


def load_groups(spec: str) -> GroupMapping:
    """`builtin`, or a JSON file {derived column: {"from": source column, "map": {raw value: group}}}."""
    if spec == "builtin":
        return builtin_groups()
    path = Path(spec)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--groups: {spec!r} is neither 'builtin' nor an existing JSON file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"--groups {path}: not a readable JSON file ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"--groups {path}: expected an object {{column: {{'from': ..., 'map': {{...}}}}}}")
    derived = {}
    for column, entry in raw.items():
        valid = isinstance(entry, dict) and isinstance(entry.get("from"), str) and isinstance(entry.get("map"), dict)
        if not valid:
            raise InputError(f"--groups {path}: column {column!r} needs 'from' (a column name) and 'map' (an object)")
        table = {str(k): str(v) for k, v in entry["map"].items()}
        derived[str(column)] = (entry["from"], table, ())
    return GroupMapping(derived)
