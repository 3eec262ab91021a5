"""What every page of the storefront shares: the API clients of this browser session, readable
errors, images fetched once and sized for a laptop screen, job progress bars, the label filters.

State kept in `st.session_state` (one browser session):
    session_token   the shopper's token from POST /v1/sessions (made once per browser: it is kept
                    in the `tryon_session` cookie, read back on a reload or in a new tab)
    designer_key    the designer API key typed in the studio's sidebar
    chosen_item     the outfit picked in the Shop for the Try-on page (see `item_from_*`)
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError
from ui.settings import UiSettings

log = logging.getLogger(__name__)

GRID_IMAGE_PX = 200                     # Displayed side of a catalog / variant thumbnail.
DETAIL_IMAGE_PX = 320                   # Displayed side of a single large image.
IMAGE_CACHE_SIZE = 256                  # Images kept per browser session.
ANY = "Any"                             # The "no filter" choice of a label selectbox.
ON_MODEL = "on_model"                   # The view a face can be put on (flat product shots cannot).
SESSION_COOKIE = "tryon_session"        # The browser's cookie with the shopper's session token.
SESSION_COOKIE_MAX_AGE_S = 30 * 24 * 3600  # When the API's answer has no expiry.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{16,200}")


def settings() -> UiSettings:
    return UiSettings()


def api_base() -> ApiClient:
    s = settings()
    return ApiClient(s.api_url, timeout=s.request_timeout)


def shopper_client() -> ApiClient:
    """The shopper's client. The anonymous session is made once per browser (not per tab or page
    load): its token is kept in a cookie that later page loads read back (`st.context.cookies`),
    so that a reload or a new tab still shows, and can delete, what the shopper uploaded. On
    failure the page shows why and stops."""
    base = api_base()
    token = st.session_state.get("session_token")
    if not token:
        try:
            token = _token_from_cookie(base)
            if token is None:
                opened = base.open_session()
                token = str(opened["token"])
                remember_session(token, expires_at=str(opened.get("expires_at") or ""))
        except ApiError as exc:
            st.error(exc.message)
            st.stop()
        st.session_state["session_token"] = token
    return base.with_credentials(token=token)


def _token_from_cookie(base: ApiClient) -> str | None:
    """The session token of this browser's cookie when the API still accepts it."""
    try:
        token = st.context.cookies.get(SESSION_COOKIE)
    except Exception:  # No browser behind this run (e.g. a script run without a server).
        return None
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):  # (AppTest has no real cookies.)
        return None
    return token if base.with_credentials(token=token).session_is_live() else None


def remember_session(token: str, *, expires_at: str) -> None:
    """Keep `token` in this browser's session cookie until the session expires.

    Written by a script in the page, since Streamlit has no way to set a cookie in its HTTP answers;
    so the cookie cannot be HttpOnly. It is SameSite=Strict (never sent by another site's page),
    Secure over https, and the token never appears in a URL that a shopper might share."""
    if not _TOKEN_SHAPE.fullmatch(token):  # Nothing else goes into the script.
        raise ValueError("unexpected session token format")
    max_age = SESSION_COOKIE_MAX_AGE_S
    with contextlib.suppress(ValueError):
        expires = dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        max_age = max(int((expires - dt.datetime.now(dt.UTC)).total_seconds()), 0)
    cookie = f"{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict"
    st.html(
        f"<script>document.cookie = {json.dumps(cookie)} + "
        '(location.protocol === "https:" ? "; Secure" : "");</script>',
        unsafe_allow_javascript=True,
    )


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Show an ApiError as one red line (the API's detail) instead of a traceback; the rest of the
    page still renders."""
    try:
        yield
    except ApiError as exc:
        log.info("API error %s: %s", exc.status, exc.detail)
        st.error(exc.message)


def cached(key: str, load: Callable[[], Any]) -> Any:
    """`load()` once per browser session under `key` (e.g. the label schema, the edit directions)."""
    store: dict[str, Any] = st.session_state.setdefault("_cache", {})
    if key not in store:
        store[key] = load()
    return store[key]


def image_bytes(client: ApiClient, url: str) -> bytes:
    """A stored image's bytes, fetched once per browser session."""
    store: dict[str, bytes] = st.session_state.setdefault("_images", {})
    if url not in store:
        if len(store) >= IMAGE_CACHE_SIZE:
            store.pop(next(iter(store)))
        store[url] = client.image(url)
    return store[url]


def for_display(data: bytes, side: int) -> bytes:
    """PNG bytes of the image scaled so that its longer side is `side` px, with a smooth filter
    (Lanczos): a 64² model output upscaled by nearest neighbour looks blocky on a laptop screen."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        im = opened.convert("RGB")
        scale = side / max(im.size)
        if abs(scale - 1.0) > 1e-3:
            size = (max(round(im.width * scale), 1), max(round(im.height * scale), 1))
            im = im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()


def image_markup(png: bytes, side: int, alt: str) -> str:
    """An <img> with the PNG inline (a data: URI) at `side` px wide, shrinking on narrow columns.

    Inline because Streamlit 1.60 (the newest that runs with mediapipe's protobuf<5) cannot serve
    PNG/JPEG from its media route under Starlette >= 1.5: its gzip middleware drops the response
    start of excluded content types, so st.image shows a broken image in a real browser."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" width="{side}" '
        'style="max-width:100%;height:auto;border-radius:4px"/>'
    )


def show_image(client: ApiClient, image: dict[str, Any] | None, side: int, caption: str | None = None) -> None:
    """Show an ImagePublic (its `url`) at `side` px, with its caption, or a note when there is none."""
    if not image or not image.get("url"):
        st.caption(caption or "no image")
        return
    data = image_bytes(client, str(image["url"]))
    st.markdown(image_markup(for_display(data, side), side, caption or "image"), unsafe_allow_html=True)
    if caption:
        st.caption(caption)


def progress_reporter(label: str) -> Callable[[float, str], None]:
    """A progress bar under `label` for ApiClient.wait_job(on_progress=...)."""
    bar = st.progress(0.0, text=label)

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{label}: {message}")

    return report


def label_columns(client: ApiClient) -> dict[str, dict[str, Any]]:
    """The model's label columns by their OutfitCreate field ("category", "colour", "gender", "view")."""

    def load() -> dict[str, dict[str, Any]]:
        labels = client.get("/v1/labels")
        return {col["field"]: col for col in labels.get("columns", []) if col.get("field")}

    result: dict[str, dict[str, Any]] = cached("labels", load)
    return result


def label_filters(
    client: ApiClient,
    fields: tuple[str, ...],                    # OutfitCreate fields, e.g. ("category", "colour").
    *,
    key: str,                                   # Widget key prefix (one per place the filters appear).
    allow_any: bool = True,                     # Offer "Any" (no filter) first.
    defaults: dict[str, str | None] | None = None,  # Preselected values by field (None = "Any").
    counts: dict[str, dict[str, int]] | None = None,  # Items per value given the other filters (the
                                                #   catalog's `counts`): shown, and values without any left out.
) -> dict[str, str | None]:
    """One selectbox per label field, side by side; returns {field: value or None for "Any"}."""
    columns = label_columns(client)
    present = [f for f in fields if f in columns]
    chosen: dict[str, str | None] = {}
    for slot, field in zip(st.columns(max(len(present), 1)), present, strict=False):
        default = (defaults or {}).get(field)
        held = _held(counts, field)
        values = [v for v in columns[field]["values"] if held is None or held.get(v.casefold()) or v == default]
        options = [ANY, *values] if allow_any else values
        index = options.index(default) if default in options else 0
        with slot:
            value = st.selectbox(
                field.capitalize(), options, index=index, key=f"{key}-{field}", format_func=_value_text(field, held)
            )
        chosen[field] = None if value == ANY else value
    return chosen


def _held(counts: dict[str, dict[str, int]] | None, field: str) -> dict[str, int] | None:
    """{value casefolded: items} of one field, or None when not known (every value is offered)."""
    if counts is None or field not in counts:
        return None
    return {str(v).casefold(): int(n) for v, n in counts[field].items()}


def current_filters(fields: tuple[str, ...], *, key: str, defaults: dict[str, str | None]) -> dict[str, str | None]:
    """The values `label_filters(key=key)` will return in this run, before it draws them: what the
    shopper just chose (the widgets' state), else `defaults`."""
    out: dict[str, str | None] = {}
    for field in fields:
        value = st.session_state.get(f"{key}-{field}", defaults.get(field))
        out[field] = None if value in (None, ANY) else str(value)
    return out


# Shopper words for the model's label values (its schema's own words are the developers').
CATEGORY_WORDS = {
    "tops": "top", "bottoms": "bottoms", "footwear": "shoes", "accessories": "accessory", "bags": "bag",
    "innerwear": "innerwear", "outerwear": "jacket", "dresses": "dress",
}
VIEW_WORDS = {"on_model": "on a model", "flat": "product shot"}
UNNAMED = "other"                       # The value that collects rare labels: not worth saying.


def shopper_name(fields: dict[str, str | None]) -> str:
    """An item's name in a shopper's words from its friendly fields (category, colour, gender), e.g.
    {"category": "tops", "colour": "blue", "gender": "Men"} -> "Blue top · men"."""
    category = fields.get("category")
    colour = fields.get("colour")
    gender = fields.get("gender")
    thing = CATEGORY_WORDS.get(str(category), str(category).replace("_", " ")) if category not in (None, UNNAMED) \
        else "item"
    words = f"{colour.replace('_', ' ')} {thing}" if colour and colour != UNNAMED else thing
    parts = [words[:1].upper() + words[1:]]
    if gender and gender != UNNAMED:
        parts.append(gender.replace("_", " ").lower())
    return " · ".join(parts)


def _value_text(field: str, held: dict[str, int] | None = None) -> Callable[[str], str]:
    def text(value: str) -> str:
        if value == ANY:
            return value
        words = label_value_text(field, value)
        return f"{words} ({held.get(value.casefold(), 0)})" if held is not None else words

    return text


def label_value_text(field: str, value: str) -> str:
    """A label value as a filter shows it ("on_model" -> "on a model")."""
    if field == "view":
        return VIEW_WORDS.get(value, value.replace("_", " "))
    return value.replace("_", " ")


def fields_of(labels: dict[str, str], columns: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """{friendly field: value} of labels given by schema name, through `label_columns`."""
    by_name = {col["name"]: field for field, col in columns.items()}
    return {by_name[name]: value for name, value in labels.items() if name in by_name}


def item_from_catalog(item: dict[str, Any]) -> dict[str, Any]:
    """A shop item from a CatalogItemPublic (the Try-on page sends `ref` to POST /v1/tryon). A
    generated item is named in a shopper's words from its fields; a designer pick keeps its name."""
    fields = {f: item.get(f) for f in ("category", "colour", "gender", "view")}
    designer = item.get("source") == "designer"
    return {
        "ref": {"catalog_id": item["id"]},
        "name": (item.get("name") if designer else None) or shopper_name(fields),
        "labels": item.get("labels") or {},
        "fields": fields,
        "image": item.get("image"),
        "seed": item.get("seed"),
        "truncation": item.get("truncation"),
        "source": item.get("source", "generated"),
    }


def item_from_product(product: dict[str, Any]) -> dict[str, Any]:
    """A shop item from a ProductPublic: a shop's real product, shown by its real photo."""
    return {
        "ref": {"product_id": product["id"]},
        "name": product.get("name") or "product",
        "labels": product.get("labels") or {},
        "fields": {f: product.get(f) for f in ("category", "colour", "gender", "view")},
        "image": product.get("photo"),
        "seed": None,
        "truncation": None,
        "source": "product",
    }


def item_kind(item: dict[str, Any]) -> str:
    """What the shopper is told an item is: a real product photo, or a design our model generated."""
    return "Photo" if item.get("source") == "product" else "Generated design"


def item_from_outfit(
    outfit: dict[str, Any], name: str | None = None, columns: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A shop item from an OutfitPublic (a freshly generated outfit, not in the catalog).
    columns: `label_columns`, to name it in a shopper's words."""
    labels = outfit.get("labels") or {}
    fields = fields_of(labels, columns or {})
    return {
        "ref": {"outfit_id": outfit["id"]},
        "name": name or shopper_name(fields),
        "labels": labels,
        "fields": fields,
        "image": outfit.get("image"),
        "seed": outfit.get("seed"),
        "truncation": outfit.get("truncation"),
        "source": "generated",
    }


def describe_item(item: dict[str, Any]) -> str:
    """What a shopper reads under an item: its name's words and how it is shown, e.g.
    "Blue top · men · on a model"."""
    fields = item.get("fields") or {}
    parts = [shopper_name(fields)] if fields else []
    if fields.get("view"):
        parts.append(label_value_text("view", str(fields["view"])))
    return " · ".join(parts)
