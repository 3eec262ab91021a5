"""The storefront's entry script: `streamlit run ui/app.py` (what `tryon up` starts).

Settings: TRYON_UI_API_URL (the API, default http://127.0.0.1:8000), TRYON_UI_API_KEY (a designer
key for the studio; it can also be typed in the studio's sidebar).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import streamlit as st

log = logging.getLogger("ui.app")


def pages() -> dict[str, Any]:
    """{name: st.Page}: Shop (the default), Try-on, Designer studio."""
    from ui.views import shop, studio, tryon

    return {
        "shop": st.Page(shop.render, title="Shop", icon=":material/storefront:", url_path="shop", default=True),
        "tryon": st.Page(tryon.render, title="Try-on", icon=":material/face:", url_path="try-on"),
        "studio": st.Page(studio.render, title="Designer studio", icon=":material/palette:", url_path="studio"),
    }


def main() -> None:
    try:
        import ui  # noqa: F401  (installed with the project)
    except ImportError:  # Run from a checkout without `pip install -e .`: the repository root.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ui.navigation import set_pages

    st.set_page_config(page_title="tryon storefront", page_icon=":material/checkroom:", layout="wide")
    app_pages = pages()
    set_pages(app_pages)
    page = st.navigation(list(app_pages.values()))
    try:
        page.run()
    except Exception as exc:  # Never a traceback in front of a shopper (st.stop/st.rerun are BaseExceptions).
        log.exception("page %s failed", page.title)
        st.error(f"Something went wrong on this page ({type(exc).__name__}: {exc}). Reload to try again.")


if __name__ == "__main__":
    main()
