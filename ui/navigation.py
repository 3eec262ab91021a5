"""Moving between the storefront's pages (`go_to("tryon")`), so that one page can send the shopper to
another.

The entry script (ui/app.py) builds the pages and registers them here with `set_pages` on every run;
this module imports no view, so every view may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

_PAGES_KEY = "_storefront_pages"  # st.session_state: {name: st.Page}, set by ui/app.py.


def set_pages(pages: Mapping[str, Any]) -> None:
    """Register this session's pages ({name: st.Page}, the names `go_to` takes)."""
    st.session_state[_PAGES_KEY] = dict(pages)


def go_to(name: str) -> None:
    """Switch to page `name` (a key of the registered pages); ends this run of the script.

    A page run on its own (no app registered its pages) is simply run again.
    """
    pages: dict[str, Any] = st.session_state.get(_PAGES_KEY) or {}
    if not pages:
        st.rerun()
    if name not in pages:
        raise KeyError(f"no storefront page {name!r}; the pages are {', '.join(sorted(pages))}")
    st.switch_page(pages[name])
