"""Shop: the catalog as a grid, filtered by category, colour and gender; an item's detail; "try it on".

Items are the shops' real products (GET /v1/products, shown by their real photo, marked "Photo")
followed by the generated designs (GET /v1/catalog, marked "Generated design"), under the same
filters and one page count. On an API without a catalog, the designs are freshly generated outfits
(POST /v1/outfits, one per seed) so that the rest of the storefront still works.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from ui.client import ApiClient
from ui.common import (
    DETAIL_IMAGE_PX,
    GRID_IMAGE_PX,
    ON_MODEL,
    cached,
    current_filters,
    describe_item,
    item_from_catalog,
    item_from_outfit,
    item_from_product,
    item_kind,
    label_columns,
    label_filters,
    reported_errors,
    settings,
    shopper_client,
    show_image,
)
from ui.navigation import go_to

GRID_COLUMNS = 4
FILTER_FIELDS = ("category", "colour", "gender", "view")


def catalog_page(
    client: ApiClient, filters: dict[str, str | None], page: int, per_page: int
) -> tuple[list[dict[str, Any]], int, dict[str, dict[str, int]] | None]:
    """(items, total, counts per filter value) of one catalog page; generated outfits (no counts) when
    the API has no catalog."""
    if cached("has_catalog", lambda: client.has_route("/v1/catalog")):
        body = client.get("/v1/catalog", page=page, per_page=per_page, **filters)
        items = [item_from_catalog(item) for item in body.get("items", [])]
        return items, int(body.get("total", 0)), body.get("counts")
    # No catalog on this API: a fixed "virtual catalog" of seeds, generated on demand.
    key = f"outfits:{sorted(filters.items(), key=lambda kv: kv[0])}:{page}:{per_page}"

    columns = label_columns(client)

    def generate() -> list[dict[str, Any]]:
        body = {k: v for k, v in filters.items() if v is not None}
        return [
            item_from_outfit(client.post("/v1/outfits", {"view": ON_MODEL, **body, "seed": seed}), columns=columns)
            for seed in range((page - 1) * per_page, page * per_page)
        ]

    return cached(key, generate), 4 * per_page, None


def _catalog_slice(
    client: ApiClient, filters: dict[str, str | None], start: int, count: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    """(`count` catalog items from offset `start`, the catalog's total), read in pages of `per_page`."""
    first = start // per_page + 1
    items, total, _ = catalog_page(client, filters, first, per_page)
    if count > 0 and start + count > first * per_page and first * per_page < total:
        more, _, _ = catalog_page(client, filters, first + 1, per_page)
        items = items + more
    skip = start - (first - 1) * per_page
    return items[skip : skip + count], total


def shop_page(
    client: ApiClient, filters: dict[str, str | None], page: int, per_page: int
) -> tuple[list[dict[str, Any]], int, dict[str, dict[str, int]] | None]:
    """(items, total, counts per filter value) of one shop page: the shops' products first, then the
    generated catalog. The counts are the catalog's, so they are given only while no shop has products
    (the products API does not count them)."""
    products: list[dict[str, Any]] = []
    product_total = 0
    has_products = cached("has_products", lambda: client.has_route("/v1/products"))
    if has_products:
        body = client.get("/v1/products", page=page, per_page=per_page, **filters)
        products = [item_from_product(p) for p in body.get("items", [])]
        product_total = int(body.get("total", 0))
    if not product_total:
        items, total, counts = catalog_page(client, filters, page, per_page)
        if has_products and int(client.get("/v1/products", per_page=1).get("total", 0)):
            counts = None  # Products under other filters: the catalog's counts would hide them.
        return items, total, counts
    start = max((page - 1) * per_page - product_total, 0)  # Where this page's designs start in the catalog.
    designs, design_total = _catalog_slice(client, filters, start, per_page - len(products), per_page)
    return products + designs, product_total + design_total, None


def tryable(item: dict[str, Any]) -> dict[str, Any]:
    """Button options: a flat generated shot shows no model to put a face on (a flat product does not
    need one: the service puts it on a generated model first)."""
    view = item.get("labels", {}).get("view")
    if item.get("source") == "product" or view is None or view == ON_MODEL:
        return {"disabled": False}
    return {"disabled": True, "help": "A product shot without a model: choose an on-model item to try it on."}


def choose_for_tryon(item: dict[str, Any]) -> None:
    st.session_state["chosen_item"] = item
    st.session_state.pop("tryon_result", None)
    go_to("tryon")


def render_detail(client: ApiClient, item: dict[str, Any]) -> None:
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            show_image(client, item.get("image"), DETAIL_IMAGE_PX)
        with right:
            st.subheader(item["name"])
            st.write(describe_item(item))
            notes = {"designer": "Generated design · a designer's pick",
                     "product": "Photo · a real product of the shop"}
            st.caption(notes.get(str(item.get("source")), "Generated design · made by our outfit model"))
            if st.button("Try it on", key="detail-try", type="primary", **tryable(item)):
                choose_for_tryon(item)
            if st.button("Back to all items", key="detail-close"):
                st.session_state.pop("shop_detail", None)
                st.rerun()


def render() -> None:
    st.title("Shop")
    client = shopper_client()
    with reported_errors():
        # The last filters (kept outside the widgets, whose state ends when the shopper visits another
        # page) are the defaults: back from the try-on page, the shop shows what it showed.
        kept = st.session_state.get("shop_filters") or {"view": ON_MODEL}
        filters = current_filters(FILTER_FIELDS, key="shop", defaults=kept)
        per_page = settings().page_size
        if st.session_state.get("shop_filters") != filters:  # New filters start on page 1, without a detail.
            st.session_state["shop_filters"] = filters
            st.session_state["shop_page"] = 1
            st.session_state.pop("shop_detail", None)
        page = int(st.session_state.get("shop_page", 1))
        with st.spinner("Loading the catalog…"):
            items, total, counts = shop_page(client, filters, page, per_page)
        # The filters say how many items each choice holds, and offer none that holds nothing.
        label_filters(client, FILTER_FIELDS, key="shop", defaults=filters, counts=counts)
        detail = st.session_state.get("shop_detail")
        if detail is not None:
            render_detail(client, detail)
        if not items:
            st.info("Nothing matches these filters: choose another category, colour or gender.")
            return
        st.caption(f"{total} item(s)")
        for start in range(0, len(items), GRID_COLUMNS):
            for slot, item in zip(st.columns(GRID_COLUMNS), items[start : start + GRID_COLUMNS], strict=False):
                ident = next(iter(item["ref"].values()))
                with slot, st.container(border=True):
                    show_image(client, item.get("image"), GRID_IMAGE_PX)
                    st.markdown(f"**{item['name']}**")
                    st.caption(item_kind(item))
                    a, b = st.columns(2)
                    if a.button("Details", key=f"detail-{ident}"):
                        st.session_state["shop_detail"] = item
                        st.rerun()
                    if b.button("Try it on", key=f"try-{ident}", type="primary", **tryable(item)):
                        choose_for_tryon(item)
        pages = max(math.ceil(total / per_page), 1)
        if pages > 1:
            chosen = st.number_input("Page", min_value=1, max_value=pages, value=min(page, pages), step=1)
            if int(chosen) != page:
                st.session_state["shop_page"] = int(chosen)
                st.rerun()
