"""The storefront's pages, so that one page can send the shopper to another (`go_to("tryon")`)."""

from __future__ import annotations

from typing import Any

import streamlit as st


def pages() -> dict[str, Any]:
    """{name: st.Page}: Shop (the default), Try-on, Designer studio."""
    from ui.views import shop, studio, tryon

    return {
        "shop": st.Page(shop.render, title="Shop", icon=":material/storefront:", url_path="shop", default=True),
        "tryon": st.Page(tryon.render, title="Try-on", icon=":material/face:", url_path="try-on"),
        "studio": st.Page(studio.render, title="Designer studio", icon=":material/palette:", url_path="studio"),
    }


def go_to(name: str) -> None:
    """Switch to page `name` (a key of `pages()`); ends this run of the script."""
    st.switch_page(pages()[name])
