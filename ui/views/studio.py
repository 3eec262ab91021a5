"""Designer studio (a designer API key): garment variants by seeds, truncation, style mixing of a
layer group, interpolation and colour; side-by-side compare; save to the catalog; a garment photo
transferred onto a model.

API: POST /v1/variants, POST /v1/catalog, POST /v1/garments (+ its job), GET /v1/garments/{id},
GET /v1/labels. Every call sends `X-API-Key`.

State (st.session_state): designer_key, variants ({"mode", "items": [{"outfit_id", "image",
"params"}], "inputs": [(caption, image)] of a mix}), garment (GarmentPublic once its job is done).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError
from ui.common import (
    DETAIL_IMAGE_PX,
    GRID_IMAGE_PX,
    ON_MODEL,
    api_base,
    cached,
    label_columns,
    label_filters,
    progress_reporter,
    reported_errors,
    settings,
    show_image,
)

LABEL_FIELDS = ("category", "colour", "gender", "view")
MAX_VARIANTS = 16                       # Most images one request asks for.
LAYER_GROUPS = {
    "coarse": "coarse: silhouette and pose",
    "middle": "middle: shape details",
    "fine": "fine: colour and texture",
}
GRID_COLUMNS = 4
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp"]


def parse_seeds(text: str) -> list[int]:
    """ "0-3, 7" -> [0, 1, 2, 3, 7]; ValueError with a readable message for anything else."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a seed or a range like 0-7") from None
        if first < 0 or last < first:
            raise ValueError(f"{part!r}: seeds are whole numbers >= 0, ranges go up (0-7)")
        seeds.extend(range(first, last + 1))
        if len(seeds) > MAX_VARIANTS:
            raise ValueError(f"at most {MAX_VARIANTS} seeds at a time")
    if not seeds:
        raise ValueError("give at least one seed, e.g. 0-7")
    return seeds


def parse_numbers(text: str, *, lo: float, hi: float) -> list[float]:
    """ "0.5, 0.7, 1" -> [0.5, 0.7, 1.0], each within [lo, hi]."""
    values: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value:g} is outside {lo:g}..{hi:g}")
        values.append(value)
    if not values or len(values) > MAX_VARIANTS:
        raise ValueError(f"give 1 to {MAX_VARIANTS} values separated by commas")
    return values


def designer_client() -> ApiClient | None:
    """The designer's client from the key in the sidebar (TRYON_UI_API_KEY pre-fills it)."""
    if "designer_key_input" not in st.session_state:
        st.session_state["designer_key_input"] = st.session_state.get("designer_key") or settings().api_key or ""
    key = st.sidebar.text_input(
        "Designer API key",
        type="password",
        key="designer_key_input",
        help="Make one with `tryon keys create --scope designer`.",
    ).strip()
    st.session_state["designer_key"] = key
    if not key:
        st.info(
            "The studio needs a designer API key. Make one with `tryon keys create --scope designer` "
            "(or `make run ARGS=\"keys create --scope designer\"`) and paste it in the sidebar."
        )
        return None
    client = api_base().with_credentials(api_key=key)
    try:
        cached(f"key-ok:{key}", lambda: check_key(client))
    except ApiError as exc:
        st.error(exc.message)
        return None
    return client


def check_key(client: ApiClient) -> bool:
    """ApiError (401) for a key the API does not know: any authenticated GET tells, and looking up
    a job that cannot exist costs nothing (404 = the key is fine)."""
    try:
        client.get("/v1/jobs/key-check")
    except ApiError as exc:
        if exc.status != 404:
            raise
    return True


def garment_spec(client: ApiClient, key: str, *, seed: int = 0) -> dict[str, Any]:
    """Label selectboxes (the view on a model by default: what the shop shows), a seed and a
    truncation: the `base` / `other` of POST /v1/variants."""
    chosen = label_filters(client, LABEL_FIELDS, key=key, allow_any=False, defaults={"view": ON_MODEL})
    spec: dict[str, Any] = dict(chosen)
    a, b = st.columns(2)
    spec["seed"] = int(a.number_input("Seed", min_value=0, value=seed, step=1, key=f"{key}-seed"))
    spec["truncation"] = float(
        b.slider("Truncation", 0.0, 1.5, 0.7, 0.05, key=f"{key}-truncation", help="lower = more typical")
    )
    return spec


def request_variants(client: ApiClient, body: dict[str, Any], title: str) -> None:
    with st.spinner(f"Generating {title}…"):
        result = client.post("/v1/variants", body)
    st.session_state["variants"] = {"mode": body["mode"], "title": title, "items": result.get("variants", [])}


def single_garment(client: ApiClient, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The image of one garment spec (a seed "variant" of itself), e.g. an input of a mix."""
    variants = client.post("/v1/variants", {"base": spec, "mode": "seeds", "seeds": [spec["seed"]]}).get("variants")
    return variants[0].get("image") if variants else None


def describe_params(params: dict[str, Any]) -> str:
    """ "seed 3, truncation 0.7": the scalar parameters that tell variants apart (not the mode)."""
    shown = {k: v for k, v in params.items() if k != "mode" and isinstance(v, str | int | float)}
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())


def render_variant_controls(client: ApiClient, base: dict[str, Any]) -> None:
    seeds_tab, trunc_tab, mix_tab, lerp_tab, colour_tab = st.tabs(
        ["Seeds", "Truncation", "Style mix", "Interpolate", "Colour"]
    )
    with seeds_tab:
        text = st.text_input("Seeds", "0-7", key="v-seeds", help="e.g. 0-7 or 1, 5, 9")
        if st.button("Generate seed variants", key="go-seeds"):
            try:
                seeds = parse_seeds(text)
            except ValueError as exc:
                st.error(f"Seeds: {exc}")
            else:
                request_variants(client, {"base": base, "mode": "seeds", "seeds": seeds}, "seed variants")
    with trunc_tab:
        text = st.text_input("Truncations", "0.3, 0.5, 0.7, 0.9, 1.0", key="v-truncs")
        if st.button("Generate truncation variants", key="go-truncation"):
            try:
                truncations = parse_numbers(text, lo=0.0, hi=1.5)
            except ValueError as exc:
                st.error(f"Truncations: {exc}")
            else:
                body: dict[str, Any] = {"base": base, "mode": "truncation", "truncations": truncations}
                request_variants(client, body, "truncation variants")
    with mix_tab:
        st.caption("Take one layer group from a second garment.")
        other = garment_spec(client, "mix-other", seed=base["seed"] + 1)
        layers = st.radio(
            "Layer group", list(LAYER_GROUPS), format_func=LAYER_GROUPS.__getitem__, horizontal=True, key="v-layers"
        )
        if st.button("Mix styles", key="go-mix"):
            request_variants(client, {"base": base, "mode": "mix", "other": other, "layers": layers}, "a style mix")
            st.session_state["variants"]["inputs"] = [
                ("base garment", single_garment(client, base)),
                ("second garment", single_garment(client, other)),
            ]
    with lerp_tab:
        st.caption("Walk from the base garment to a second one.")
        other = garment_spec(client, "lerp-other", seed=base["seed"] + 1)
        steps = st.slider("Steps", 3, MAX_VARIANTS, 8, key="v-steps")
        if st.button("Interpolate", key="go-interpolate"):
            body = {"base": base, "mode": "interpolate", "other": other, "steps": steps}
            request_variants(client, body, "an interpolation")
    with colour_tab:
        colours = list(label_columns(client).get("colour", {}).get("values", []))
        chosen = st.multiselect("Colours", colours, default=colours[:4], key="v-colours")
        if st.button("Recolour", key="go-colour", disabled=not chosen):
            request_variants(client, {"base": base, "mode": "colour", "colours": chosen}, "colour variants")


def render_variants(client: ApiClient) -> None:
    result = st.session_state.get("variants")
    if not result:
        return
    items: list[dict[str, Any]] = result["items"]
    st.subheader(f"Results: {result['title']}")
    if not items:
        st.info("The API returned no variants.")
        return
    inputs = result.get("inputs") or []
    if inputs:  # A mix: what went into it, beside it.
        st.markdown("**Mixed from**")
        for slot, (caption, image) in zip(st.columns(GRID_COLUMNS), inputs, strict=False):
            with slot:
                show_image(client, image, GRID_IMAGE_PX, caption)
    captions = [variant_caption(result["mode"], i, len(items), v.get("params", {})) for i, v in enumerate(items)]
    if result["mode"] == "interpolate" and len(items) > 1:
        step = st.slider("Interpolation", 1, len(items), 1, key="lerp-view", help="1 = the base garment")
        show_image(client, items[step - 1]["image"], DETAIL_IMAGE_PX, captions[step - 1])
    numbered = list(enumerate(items))
    for start in range(0, len(items), GRID_COLUMNS):
        for slot, (i, v) in zip(st.columns(GRID_COLUMNS), numbered[start : start + GRID_COLUMNS], strict=False):
            with slot:
                show_image(client, v.get("image"), GRID_IMAGE_PX, captions[i])
                st.checkbox("compare", key=f"cmp-{i}-{v['outfit_id']}")
    chosen = [(i, v) for i, v in enumerate(items) if st.session_state.get(f"cmp-{i}-{v['outfit_id']}")]
    if len(chosen) >= 2:
        st.markdown("**Side by side**")
        for slot, (i, v) in zip(st.columns(len(chosen[:4])), chosen[:4], strict=False):
            with slot:
                show_image(client, v.get("image"), DETAIL_IMAGE_PX, captions[i])
    choices = [(f"#{i + 1}: {captions[i]}", v["outfit_id"]) for i, v in enumerate(items)]
    render_save(client, choices)


def variant_caption(mode: str, index: int, count: int, params: dict[str, Any]) -> str:
    """A variant's caption: "step 4 of 7" along an interpolation (the first is the base garment, the
    last the second one), "fine layers of the second garment" for a mix, else its parameters."""
    if mode == "interpolate":
        ends = {0: " (the base garment)", count - 1: " (the second garment)"}
        return f"step {index + 1} of {count}{ends.get(index, '')}"
    if mode == "mix" and params.get("layers"):
        return f"{params['layers']} layers of the second garment"
    return describe_params(params)


def render_save(client: ApiClient, choices: list[tuple[str, str]], *, key: str = "save") -> None:
    """Save one of `choices` ((label, outfit_id)) to the catalog under a name (POST /v1/catalog)."""
    if not cached("has_catalog", lambda: client.has_route("/v1/catalog")):
        st.caption("This server has no catalog to save to yet.")
        return
    with st.form(f"{key}-form"):
        labels = [label for label, _ in choices]
        which = st.selectbox("Save to the catalog", labels, key=f"{key}-which")
        st.text_input("Name in the catalog", placeholder="e.g. Midnight tee", key=f"{key}-name")
        submitted = st.form_submit_button("Save to catalog", on_click=_take_name, args=(key,))
    if submitted:
        name = str(st.session_state.pop(f"{key}-submitted-name", ""))
        if not name.strip():
            st.error("Give the item a name first.")
            return
        outfit_id = dict(choices)[which]
        with st.spinner("Saving…"):
            item = client.post("/v1/catalog", {"outfit_id": outfit_id, "name": name.strip()})
        st.success(f"Saved “{item.get('name', name)}” to the catalog.")


def _take_name(key: str) -> None:
    """The save button's callback: keep the typed name for this run and empty the field, so that the
    next item is not saved under the last one's name."""
    st.session_state[f"{key}-submitted-name"] = st.session_state.get(f"{key}-name", "")
    st.session_state[f"{key}-name"] = ""


def render_garment(client: ApiClient) -> None:
    st.subheader("A garment photo on a model")
    if not cached("has_garments", lambda: client.has_route("/v1/garments")):
        st.caption("This server does not transfer garment photos yet.")
        return
    genders = list(label_columns(client).get("gender", {}).get("values", []))
    gender = st.selectbox("Model", ["any", *genders], key="garment-gender")
    photo = st.file_uploader("A photo of a garment (JPEG, PNG or WebP)", type=PHOTO_TYPES, key="garment-photo")
    if photo is not None and photo.file_id != st.session_state.get("garment_upload_id"):
        st.session_state["garment_upload_id"] = photo.file_id
        fields = {} if gender == "any" else {"gender": gender}
        with st.spinner("Uploading…"):
            garment = client.upload("/v1/garments", photo.name or "garment.jpg", photo.getvalue(), photo.type, fields)
        st.session_state["garment"] = garment
        if garment.get("job"):
            report = progress_reporter("Putting it on a model")
            job = client.wait_job(garment["job"], on_progress=report, timeout=settings().job_timeout)
            result = job.get("result") or {}
            garment = client.get(f"/v1/garments/{garment['id']}")
            garment.setdefault("outfit_id", result.get("outfit_id"))
            garment.setdefault("on_model", result.get("on_model"))
            garment.setdefault("flat", result.get("flat"))
            st.session_state["garment"] = garment
    garment = st.session_state.get("garment")
    if not garment:
        return
    cols = st.columns(3)
    for slot, (field, caption) in zip(
        cols, [("photo", "your photo"), ("flat", "as our generator draws it"), ("on_model", "on a model")], strict=True
    ):
        with slot:
            show_image(client, garment.get(field), GRID_IMAGE_PX, caption)
    if garment.get("outfit_id"):
        render_save(client, [("the garment on a model", garment["outfit_id"])], key="save-garment")


def render() -> None:
    st.title("Designer studio")
    client = designer_client()
    if client is None:
        return
    with reported_errors():
        if not cached("has_variants", lambda: client.has_route("/v1/variants")):
            st.info("This server does not make garment variants yet.")
        else:
            st.markdown("**Base garment**")
            base = garment_spec(client, "base")
            render_variant_controls(client, base)
            render_variants(client)
    st.divider()
    with reported_errors():
        render_garment(client)

