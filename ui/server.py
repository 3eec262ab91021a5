"""`python -m ui.server run ui/app.py [streamlit options]`: the `streamlit` command, with one
compatibility fix applied first (what `tryon up` starts).

The fix: Streamlit 1.60 (the newest release that runs with mediapipe's protobuf<5) subclasses
Starlette's gzip responders and overrides how they handle the response start. From Starlette 1.5 on,
those responders skip compressing images, fonts and media themselves and expect the override-free
code path: with the override, every such response loses its start message and the server logs
"Expected ASGI message 'http.response.start'" (a broken favicon, broken st.image and downloads).
Removing the override lets Starlette's own (correct) handling run. Nothing is changed when the
installed versions do not have the problem.
"""

from __future__ import annotations

import inspect
import sys


def fix_streamlit_gzip() -> bool:
    """Drop Streamlit's response-start override of the gzip responders when Starlette handles
    excluded content types itself; True when something was changed."""
    try:
        from starlette.middleware.gzip import IdentityResponder
        from streamlit.web.server.starlette import starlette_gzip_middleware as gzip_module
    except ImportError:  # Another server (or a fixed Streamlit): nothing to do.
        return False
    if "exclude_content_types" not in inspect.signature(IdentityResponder.__init__).parameters:
        return False  # Starlette < 1.5: Streamlit's override is what makes exclusions work.
    changed = False
    for name in ("_MediaAwareGZipResponder", "_MediaAwareIdentityResponder"):
        cls = getattr(gzip_module, name, None)
        if cls is not None and "send_with_compression" in vars(cls):
            delattr(cls, "send_with_compression")
            changed = True
    return changed


def main() -> None:
    fix_streamlit_gzip()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *sys.argv[1:]]
    streamlit_main()


if __name__ == "__main__":
    main()
