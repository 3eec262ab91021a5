"""The built-in label groups (`tryon dataset fashion --groups builtin`): they live in
`tryon.catalog.groups`, which the shop's product import shares; see there for the tables."""

from tryon.catalog.groups import (
    ARTICLE_GROUP_COLUMN,
    ARTICLE_GROUPS,
    COLOUR_GROUP_COLUMN,
    COLOUR_GROUPS,
    MASTER_CATEGORY_GROUPS,
    OTHER,
    SUBCATEGORY_GROUPS,
    GroupMapping,
    builtin_groups,
    load_groups,
)

__all__ = [
    "ARTICLE_GROUPS",
    "ARTICLE_GROUP_COLUMN",
    "COLOUR_GROUPS",
    "COLOUR_GROUP_COLUMN",
    "MASTER_CATEGORY_GROUPS",
    "OTHER",
    "SUBCATEGORY_GROUPS",
    "GroupMapping",
    "builtin_groups",
    "load_groups",
]
