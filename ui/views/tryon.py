"""Try-on: a selfie (upload or camera, with consent), its projection into the face model, edits
(sliders and an instruction), borrowing from another of the session's photos (a region, or layer
groups), the composite on the chosen outfit, before/after, download, and "delete my photos".

API: POST /v1/faces, GET /v1/faces, GET/DELETE /v1/faces/{id}, GET /v1/jobs/{id}, GET /v1/edits/directions,
POST /v1/faces/{id}/edits, POST /v1/faces/{id}/compositions (+ its job), GET /v1/faces/{id}/edits/{id},
POST /v1/tryon (+ its job), GET /v1/tryon, DELETE /v1/tryon/{id}, POST /v1/outfits (when no outfit is chosen).

State (st.session_state): face (FacePublic), face_ids (every face of the shopper's session, as
GET /v1/faces lists them on each run, oldest first: a reload or a new tab shows them too),
upload_id (the uploaded file already sent), face_choice (a photo with several faces, waiting for the
shopper to say which is theirs), edit (EditPublic),
borrowed (the edit that borrowed from another photo: slider edits stack on it), tryon_result
({"image", "item", "face_id"}), chosen_item (from the Shop).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError, JobFailedError
from ui.common import (
    DETAIL_IMAGE_PX,
    GRID_IMAGE_PX,
    cached,
    describe_item,
    for_display,
    image_bytes,
    image_markup,
    item_from_outfit,
    label_columns,
    progress_reporter,
    reported_errors,
    settings,
    shopper_client,
    show_image,
)
from ui.navigation import go_to

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp"]
CONSENT = (
    "I agree that my photo is processed to make my try-on images. It is kept, with everything made from "
    "it, until I delete it here, and deleted anyway once my shopping session has expired."
)
HISTORY_SIZE = 12                       # Earlier try-ons shown, newest first.
HISTORY_COLUMNS = 4
MY_FACES_LIMIT = 100                    # Photos of one session listed (the API's most per page).
THUMB_IMAGE_PX = 120                    # Displayed side of a photo in "Your photos".
SLIDER_STEPS = 3                        # Slider positions a side of "as in your photo".
MAIN_EDITS = ("age", "smile", "gender", "pose", "glasses")  # Shown first; the others under "More".
# Each edit's title and the words for its two sides (− and +), as a shopper says them.
EDIT_WORDS: dict[str, tuple[str, str, str]] = {
    "age": ("Age", "younger", "older"),
    "smile": ("Smile", "more serious", "more smiling"),
    "gender": ("Gender", "more feminine", "more masculine"),
    "pose": ("Head turn", "to the left", "to the right"),
    "glasses": ("Glasses", "less", "more"),
    "blond_hair": ("Blond hair", "darker", "blonder"),
    "bald": ("Bald", "more hair", "balder"),
    "mustache": ("Mustache", "less", "more"),
    "beard": ("Beard", "less", "more"),
    "hat": ("Hat", "less", "more"),
    "makeup": ("Make-up", "less", "more"),
}
FACE_STATE_KEYS = ("face", "edit", "borrowed", "tryon_result", "face_choice")  # upload_id stays: a file is sent once.
# What can be borrowed from another photo: a region (a composition job) or layer groups (a mix).
BORROW: dict[str, tuple[str, Any]] = {
    "Eyes": ("region", "eyes"),
    "Mouth": ("region", "mouth"),
    "Nose": ("region", "nose"),
    "Hair": ("region", "hair"),
    "Face shape and pose": ("groups", ["coarse"]),
    "Features and expression": ("groups", ["middle"]),
    "Colours": ("groups", ["fine"]),
}


def edit_directions(client: ApiClient) -> dict[str, Any]:
    """GET /v1/edits/directions; {"unavailable": reason} when this API has no face edits."""

    def load() -> dict[str, Any]:
        try:
            result: dict[str, Any] = client.get("/v1/edits/directions")
        except ApiError as exc:
            if exc.status in (404, 405, 501, 503):
                return {"unavailable": exc.detail}
            raise
        return result

    result: dict[str, Any] = cached("edit_directions", load)
    return result


def upload_selfie(client: ApiClient, name: str, data: bytes, media_type: str, which: int | None = None) -> None:
    """POST /v1/faces (its projection job is followed by `follow_projection`). A photo with several
    faces is kept in `face_choice` with the faces the API found, for the shopper to say which is theirs
    (`render_face_choice`); which: that choice, the face's index."""
    st.session_state.pop("face_choice", None)
    fields = {"face": str(which)} if which is not None else None
    try:
        with st.spinner("Finding your face…"):
            face = client.upload("/v1/faces", name, data, media_type, fields)
    except ApiError as exc:
        if exc.status == 422 and len(exc.body.get("faces") or []) > 1:
            st.session_state["face_choice"] = {
                "name": name, "data": data, "media_type": media_type, "faces": exc.body["faces"],
                "size": (exc.body.get("photo_width"), exc.body.get("photo_height")),
            }
            return
        raise
    st.session_state["face"] = face
    ids: list[str] = st.session_state.setdefault("face_ids", [])
    ids.append(face["id"])
    for key in ("edit", "borrowed", "tryon_result"):
        st.session_state.pop(key, None)
    if face.get("note"):
        st.info(face["note"])


def follow_projection(client: ApiClient) -> None:
    """Wait for the face's projection job (if any) with a progress bar, then reload the face."""
    face = st.session_state.get("face")
    job = (face or {}).get("projection_job")
    if not face or not job or job.get("status") in ("succeeded", "failed"):
        return
    report = progress_reporter("Getting your face ready")
    with contextlib.suppress(JobFailedError):  # render_face says why, from the reloaded face.
        client.wait_job(job, on_progress=report, timeout=settings().job_timeout)
    st.session_state["face"] = client.get(f"/v1/faces/{face['id']}")


def load_my_faces(client: ApiClient) -> list[dict[str, Any]]:
    """Every face of the shopper's session as the API has them (GET /v1/faces), oldest first, so
    that a reload or a new tab still lists them; `face_ids` follows."""
    faces: list[dict[str, Any]] = list(reversed(client.get("/v1/faces", limit=MY_FACES_LIMIT)))
    st.session_state["face_ids"] = [f["id"] for f in faces]
    return faces


def delete_my_photos(client: ApiClient) -> int:
    """DELETE every face of the shopper's session; returns how many were deleted."""
    deleted = 0
    with contextlib.suppress(ApiError):  # The API's list, when it answers: also what earlier page loads uploaded.
        load_my_faces(client)
    for face_id in list(st.session_state.get("face_ids", [])):
        try:
            client.delete(f"/v1/faces/{face_id}")
            deleted += 1
        except ApiError as exc:
            if exc.status != 404:  # 404: already gone.
                raise
        st.session_state["face_ids"].remove(face_id)
    for key in FACE_STATE_KEYS:
        st.session_state.pop(key, None)
    st.session_state.pop("_images", None)
    return deleted


def render_selfie_input(client: ApiClient) -> None:
    consent = st.checkbox(CONSENT, key="consent")
    source = st.radio("Your photo", ["Upload a photo", "Use the camera"], horizontal=True, key="photo_source")
    if source == "Use the camera":
        uploaded = st.camera_input("Take a selfie", disabled=not consent, key="camera")
    else:
        uploaded = st.file_uploader(
            "A photo of your face (JPEG, PNG or WebP)", type=PHOTO_TYPES, disabled=not consent, key="selfie"
        )
    if not consent:
        st.caption("Tick the box above to add your photo.")
        return
    if uploaded is not None and uploaded.file_id != st.session_state.get("upload_id"):
        st.session_state["upload_id"] = uploaded.file_id  # Sent once, even when it is refused.
        upload_selfie(client, uploaded.name or "selfie.jpg", uploaded.getvalue(), uploaded.type or "image/jpeg")
    render_face_choice(client)


def render_face_choice(client: ApiClient) -> None:
    """The photo just sent shows several faces: it is shown with each face framed and numbered, and
    the shopper says which one is theirs (the photo is then sent again with that face's index)."""
    choice = st.session_state.get("face_choice")
    if not choice:
        return
    faces = choice["faces"]
    st.info(f"We found {len(faces)} faces in this photo. Which one is you?")
    framed = framed_faces(choice["data"], faces, choice["size"])
    st.markdown(image_markup(framed, DETAIL_IMAGE_PX * 2, "your photo, each face framed and numbered"),
                unsafe_allow_html=True)
    for slot, face in zip(st.columns(min(len(faces), HISTORY_COLUMNS)) * len(faces), faces, strict=False):
        if slot.button(f"Face {face['index'] + 1} is me", key=f"choose-face-{face['index']}"):
            upload_selfie(client, choice["name"], choice["data"], choice["media_type"], which=int(face["index"]))
            st.rerun()


FRAME_COLOURS = ((255, 64, 129), (0, 176, 255), (255, 193, 7), (0, 200, 83))


def framed_faces(data: bytes, faces: list[dict[str, Any]], size: tuple[int | None, int | None]) -> bytes:
    """PNG of the photo (upright, at most 640 px) with each face's box drawn and numbered from 1.
    size: the photo's (width, height) the boxes refer to (the API's upright photo)."""
    from PIL import Image, ImageDraw, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    width = size[0] or photo.width
    photo.thumbnail((640, 640), Image.Resampling.LANCZOS)
    k = photo.width / width
    draw = ImageDraw.Draw(photo)
    line = max(2, photo.width // 160)
    for face in faces:
        colour = FRAME_COLOURS[int(face["index"]) % len(FRAME_COLOURS)]
        x0, y0, x1, y1 = (float(v) * k for v in face["box"])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        label = str(int(face["index"]) + 1)
        font_px = max(14, int((y1 - y0) / 4))
        draw.rectangle((x0, y0 - font_px - 4, x0 + font_px * 0.8 + 6, y0), fill=colour)
        draw.text((x0 + 4, y0 - font_px - 2), label, fill=(255, 255, 255), font_size=font_px)
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    return buf.getvalue()


def render_my_photos(client: ApiClient, faces: list[dict[str, Any]]) -> None:
    """The session's photos (also those of earlier page loads and other tabs): each can be taken up
    again or deleted."""
    if not faces:
        return
    current = (st.session_state.get("face") or {}).get("id")
    st.subheader("Your photos")
    for slot, face in zip(st.columns(HISTORY_COLUMNS) * MY_FACES_LIMIT, faces, strict=False):
        with slot:
            name = photo_name(face["id"])
            show_image(client, face.get("aligned") or face.get("photo"), THUMB_IMAGE_PX, name)
            a, b = st.columns(2)
            a.button("In use" if face["id"] == current else "Use this photo", key=f"use-face-{face['id']}",
                     disabled=face["id"] == current, on_click=_use_face, args=(face,))
            b.button("Delete", key=f"del-face-{face['id']}", icon=":material/delete:", on_click=_delete_face,
                     args=(client, face["id"]))


def _use_face(face: dict[str, Any]) -> None:
    for key in FACE_STATE_KEYS:
        st.session_state.pop(key, None)
    st.session_state["face"] = face


def _deleted(client: ApiClient, path: str, what: str) -> bool:
    """DELETE `path`; False (with the page's error message) when the API refused. Already gone (404)
    counts as deleted."""
    try:
        client.delete(path)
    except ApiError as exc:
        if exc.status != 404:
            st.session_state["delete_message"] = ("error", f"That {what} was not deleted. {exc.message}")
            return False
    return True


def _delete_face(client: ApiClient, face_id: str) -> None:
    """A photo's "Delete" callback: the face and everything made from it."""
    if not _deleted(client, f"/v1/faces/{face_id}", "photo"):
        return
    if (st.session_state.get("face") or {}).get("id") == face_id:
        for key in FACE_STATE_KEYS:
            st.session_state.pop(key, None)
    st.session_state.pop("_images", None)
    st.session_state["delete_message"] = ("success", "Deleted that photo and everything made from it.")


def render_face(client: ApiClient, face: dict[str, Any]) -> None:
    status = face.get("status", "uploaded")
    cols = st.columns(3)
    with cols[0]:
        show_image(client, face.get("photo"), GRID_IMAGE_PX, "your photo")
    with cols[1]:
        show_image(client, face.get("aligned"), GRID_IMAGE_PX, "your face, aligned")
    with cols[2]:
        show_image(client, face.get("reconstruction"), GRID_IMAGE_PX, "your face, ready to edit")
    job = face.get("projection_job")
    if job and job.get("status") == "failed":
        st.error(f"We could not get your face ready: {job.get('error') or 'the projection failed'}. Try another photo.")
    elif job is None and status != "projected":
        st.info("This server does not project faces yet: edits and the try-on need it.")
    refinement = face.get("refinement")
    if status == "projected" and refinement == "pending":
        st.caption("Fine-tuning our face model to your photo in the background: edits and try-ons made once it "
                   "is done keep more of you. You can go on meanwhile.")
    elif status == "projected" and refinement == "failed":
        st.caption("Fine-tuning our face model to your photo did not work out; edits use the first projection.")


def render_edits(client: ApiClient, face: dict[str, Any]) -> None:
    directions = edit_directions(client)
    if "unavailable" in directions:
        st.caption(f"Face edits are not available on this server ({directions['unavailable']}).")
        return
    with st.form("edits"):
        st.markdown("**Adjust your face**")
        strengths: dict[str, float] = {}
        items = directions.get("directions", [])
        main = [d for name in MAIN_EDITS for d in items if d["name"] == name]
        more = [d for d in items if d["name"] not in MAIN_EDITS]
        for slot, d in zip(st.columns(max(min(len(main), 3), 1)) * len(main), main, strict=False):
            with slot:
                strengths[d["name"]] = edit_slider(d)
        if more:
            with st.expander("More"):
                for slot, d in zip(st.columns(3) * len(more), more, strict=False):
                    with slot:
                        strengths[d["name"]] = edit_slider(d)
        words = directions.get("instruction_words") or []
        instruction = st.text_input(
            "Or say it in words",
            placeholder="older, smiling, no glasses",
            help="Words: " + ", ".join(words),
            key="edit-instruction",
        )
        applied = st.form_submit_button("Apply edits", disabled=face.get("status") != "projected")
    if applied:
        body: dict[str, Any] = {
            "strengths": {k: v for k, v in strengths.items() if abs(v) > 1e-9},
            "instruction": instruction.strip() or None,
        }
        borrowed = borrowed_edit(face)
        if borrowed is not None:  # Stack on what was borrowed rather than start again from the photo.
            body["base_edit_id"] = borrowed["id"]
        with st.spinner("Editing your face…"):
            edit = client.post(f"/v1/faces/{face['id']}/edits", body)
        st.session_state["edit"] = {**edit, "borrowed": borrowed["borrowed"]} if borrowed is not None else edit
        st.session_state.pop("tryon_result", None)
    edit = st.session_state.get("edit")
    if edit and edit.get("face_id") == face["id"]:
        before, after = st.columns(2)
        with before:
            show_image(client, face.get("reconstruction") or face.get("aligned"), GRID_IMAGE_PX, "before")
        with after:
            show_image(client, edit.get("image"), GRID_IMAGE_PX, "after: " + describe_strengths(edit, directions))
        if st.button("Reset edits"):
            st.session_state.pop("edit", None)
            st.session_state.pop("borrowed", None)
            st.rerun()


def edit_slider(direction: dict[str, Any]) -> float:
    """A slider of one edit in a shopper's words: from "much younger" through "as in your photo" to
    "much older" (the API's strengths behind them, SLIDER_STEPS a side)."""
    name = direction["name"]
    lo, hi = (float(x) for x in direction.get("range", (-1.0, 1.0)))
    options = strength_steps(lo, hi)
    return float(
        st.select_slider(
            edit_title(name),
            options=options,
            value=min(options, key=abs),
            format_func=lambda v: strength_words(name, v, lo, hi),
            key=f"edit-{name}",
        )
    )


def strength_steps(lo: float, hi: float) -> list[float]:
    """SLIDER_STEPS strengths a side of 0 (the "no change" position), evenly up to lo and to hi."""
    below = [lo * k / SLIDER_STEPS for k in range(SLIDER_STEPS, 0, -1)] if lo < 0 else []
    above = [hi * k / SLIDER_STEPS for k in range(1, SLIDER_STEPS + 1)] if hi > 0 else []
    return [*below, 0.0, *above]


def edit_title(name: str) -> str:
    return EDIT_WORDS.get(name, (name.replace("_", " ").capitalize(), "less", "more"))[0]


def strength_words(name: str, value: float, lo: float, hi: float) -> str:
    """A strength in words: "as in your photo", "a little older", "older", "much older"."""
    _, minus, plus = EDIT_WORDS.get(name, (name, "less", "more"))
    if abs(value) < 1e-9:
        return "as in your photo"
    end = hi if value > 0 else lo
    share = abs(value / end) if end else 1.0
    level = "a little " if share <= 1 / 3 + 1e-6 else "much " if share > 2 / 3 + 1e-6 else ""
    return level + (plus if value > 0 else minus)


def borrowed_edit(face: dict[str, Any]) -> dict[str, Any] | None:
    """The edit of `face` that borrowed from another photo (the slider edits start from it), if any."""
    borrowed: dict[str, Any] | None = st.session_state.get("borrowed")
    return borrowed if borrowed is not None and borrowed.get("face_id") == face["id"] else None


def describe_strengths(edit: dict[str, Any], directions: dict[str, Any] | None = None) -> str:
    """An edit in words: "smile: much more smiling, age: a little older" (each strength against its direction's
    range, from GET /v1/edits/directions)."""
    s = edit.get("strengths") or {}
    ranges = {d["name"]: d.get("range", (-1.0, 1.0)) for d in (directions or {}).get("directions", [])}
    parts = []
    for k, v in s.items():
        lo, hi = (float(x) for x in ranges.get(k, (-abs(v) or -1.0, abs(v) or 1.0)))
        parts.append(f"{edit_title(k).lower()}: {strength_words(k, float(v), lo, hi)}")
    borrowed = edit.get("borrowed")
    return ", ".join(([borrowed] if borrowed else []) + parts) or "no change"


def photo_name(face_id: str) -> str:
    ids: list[str] = st.session_state.get("face_ids", [])
    return f"photo {ids.index(face_id) + 1}" if face_id in ids else "another photo"


def render_borrow(client: ApiClient, face: dict[str, Any]) -> None:
    """Take a region (eyes, mouth, nose, hair) or layer groups of another photo of this session."""
    others = [fid for fid in st.session_state.get("face_ids", []) if fid != face["id"]]
    if not others or face.get("status") != "projected":
        return
    with st.form("borrow"):
        st.markdown("**Borrow from another of your photos**")
        left, right = st.columns(2)
        by_name = {photo_name(fid): fid for fid in others}
        chosen = left.selectbox("From", list(by_name), key="borrow-from")
        what = right.selectbox("What", list(BORROW), key="borrow-what")
        go = st.form_submit_button("Borrow")
    if not go or chosen is None:
        return
    donor = by_name[chosen]
    kind, value = BORROW[what]
    under = borrowed_edit(face)  # What was borrowed before stays: this borrow goes on top of it.
    on_top = {"base_edit_id": under["id"]} if under is not None else {}
    if kind == "groups":
        with st.spinner("Mixing…"):
            edit = client.post(f"/v1/faces/{face['id']}/edits", {"mix": {"face_id": donor, "groups": value}, **on_top})
    else:
        edit = client.post(f"/v1/faces/{face['id']}/compositions", {"face_id": donor, "region": value, **on_top})
        if edit.get("job") and edit.get("status") != "succeeded":
            report = progress_reporter(f"Borrowing the {value}")
            try:
                client.wait_job(edit["job"], on_progress=report, timeout=settings().job_timeout)
            except JobFailedError as exc:
                st.error(f"The {value} could not be borrowed: {exc.detail}")
                return
        edit = client.get(f"/v1/faces/{face['id']}/edits/{edit['id']}")
    label = f"{what.lower()} of {photo_name(donor)}"
    edit = {**edit, "borrowed": f"{under['borrowed']}, {label}" if under is not None else label}
    st.session_state["edit"] = st.session_state["borrowed"] = edit
    st.session_state.pop("tryon_result", None)
    st.rerun()  # Shows the before / after of the edits section.


# How a shop product was tried on (TryOnPublic.path).
PATH_NOTES = {
    "photo": "Your face on the product's real photo.",
    "garment_transfer": "A product photographed flat: it was put on a generated model first, then your face.",
}


def chosen_item(client: ApiClient) -> dict[str, Any] | None:
    """The outfit picked in the Shop; without one, the shopper can have one generated here."""
    item: dict[str, Any] | None = st.session_state.get("chosen_item")
    if item is not None:
        return item
    st.info("Choose an outfit in the Shop, or try a generated one.")
    a, b = st.columns(2)
    if a.button("Go to the Shop"):
        go_to("shop")
    if b.button("Generate an outfit for me"):
        seed = int(st.session_state.get("generated_seed", 0))
        with st.spinner("Generating an outfit…"):
            outfit = client.post("/v1/outfits", {"view": "on_model", "seed": seed})
        st.session_state["generated_seed"] = seed + 1
        st.session_state["chosen_item"] = item_from_outfit(outfit, columns=label_columns(client))
        st.rerun()
    return None


def run_tryon(client: ApiClient, face: dict[str, Any], item: dict[str, Any]) -> None:
    """POST /v1/tryon with the current edits, follow its job, keep the result."""
    edit = st.session_state.get("edit") or {}
    body: dict[str, Any] = {"face_id": face["id"], **item["ref"]}
    if edit.get("face_id") == face["id"]:
        body["edits"] = {"edit_id": edit["id"]}  # The very face shown as "after".
    with st.spinner("Starting your try-on…"):
        tryon = client.post("/v1/tryon", body)
    image = tryon.get("image")
    if not image and tryon.get("job"):
        report = progress_reporter("Putting you in the outfit")
        job = client.wait_job(tryon["job"], on_progress=report, timeout=settings().job_timeout)
        image = (job.get("result") or {}).get("image")
    stored = client.get(f"/v1/tryon/{tryon['id']}")
    image = image or stored.get("image")
    box = (stored.get("metrics") or {}).get("face_box")
    st.session_state["tryon_result"] = {
        "image": image, "item": item, "face_id": face["id"], "id": tryon["id"], "face_box": box,
        "path": tryon.get("path"),
    }


def face_close_up(data: bytes, box: list[int]) -> bytes:
    """PNG of the square of the try-on image around the pasted face (`face_box`, px), framed like the
    aligned photo it is shown beside (the face fills about the middle half)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        im = opened.convert("RGB")
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(min(round(max(x1 - x0, y1 - y0)), *im.size), 1)
    left = min(max(round((x0 + x1 - side) / 2), 0), im.width - side)
    top = min(max(round((y0 + y1 - side) / 2), 0), im.height - side)
    crop = im.crop((left, top, left + side, top + side))
    buf = io.BytesIO()
    crop.save(buf, format="PNG")
    return buf.getvalue()


def render_tryon(client: ApiClient, face: dict[str, Any]) -> None:
    item = chosen_item(client)
    if item is None:
        return
    left, right = st.columns([1, 2])
    with left:
        show_image(client, item.get("image"), GRID_IMAGE_PX, item["name"])
    with right:
        st.markdown(f"**{item['name']}**")
        st.caption(describe_item(item))
        ready = face.get("status") == "projected"
        if st.button("Put me in this outfit", type="primary", disabled=not ready, key="run-tryon"):
            run_tryon(client, face, item)
        if not ready:
            st.caption("Your face must be ready first (see above).")
        if st.button("Choose another outfit"):
            go_to("shop")
    result = st.session_state.get("tryon_result")
    if result and result.get("face_id") == face["id"] and result.get("image"):
        st.subheader("Before / after")
        data = image_bytes(client, str(result["image"]["url"]))
        # Your face, and your face in the outfit at the same size (a close-up of where it went).
        before, after = st.columns(2)
        with before:
            show_image(client, face.get("aligned") or face.get("photo"), DETAIL_IMAGE_PX, "you")
        with after:
            box = result.get("face_box")
            if box:
                st.markdown(image_markup(for_display(face_close_up(data, box), DETAIL_IMAGE_PX), DETAIL_IMAGE_PX,
                                         "you in it, close-up"), unsafe_allow_html=True)
                st.caption("you in it, close-up")
            else:
                show_image(client, result["image"], DETAIL_IMAGE_PX, "you in it")
        outfit, whole = st.columns(2)
        with outfit:
            show_image(client, result["item"].get("image"), DETAIL_IMAGE_PX, "the outfit")
        with whole:
            show_image(client, result["image"], DETAIL_IMAGE_PX, "you in the outfit")
        if result.get("path") in PATH_NOTES:
            st.caption(PATH_NOTES[str(result["path"])])
        st.download_button(
            "Download my try-on",
            data=for_display(data, 512),
            file_name=f"tryon-{result['id']}.png",
            mime="application/octet-stream",  # Not image/png: see ui.common.image_markup.
        )


def render_history(client: ApiClient) -> None:
    """The session's earlier try-ons (GET /v1/tryon, newest first), each with a delete button; the one
    shown above as "you in it" is left out."""
    shown = (st.session_state.get("tryon_result") or {}).get("id")
    earlier = [t for t in client.get("/v1/tryon", limit=HISTORY_SIZE) if t.get("image") and t["id"] != shown]
    if not earlier:
        return
    st.subheader("Your earlier try-ons")
    for slot, tryon in zip(st.columns(HISTORY_COLUMNS) * HISTORY_SIZE, earlier, strict=False):
        with slot:
            show_image(client, tryon["image"], GRID_IMAGE_PX, f"{tryon['created_at'][:16].replace('T', ' ')} UTC")
            st.button("Delete", key=f"del-tryon-{tryon['id']}", icon=":material/delete:", on_click=_delete_tryon,
                      args=(client, tryon["id"]))


def _delete_tryon(client: ApiClient, tryon_id: str) -> None:
    """A try-on's "Delete" callback (runs before the page, which then shows the list without it)."""
    _deleted(client, f"/v1/tryon/{tryon_id}", "try-on")


def _delete_clicked(client: ApiClient) -> None:
    """The "Delete my photos" callback (runs before the page, so that the page shows the result)."""
    try:
        n = delete_my_photos(client)
    except ApiError as exc:
        st.session_state["delete_message"] = ("error", f"Your photos were not all deleted. {exc.message}")
    else:
        st.session_state["delete_message"] = ("success", f"Deleted {n} photo(s) and everything made from them.")


def render() -> None:
    st.title("Try it on")
    client = shopper_client()
    delete_slot = st.empty()  # Filled below, once we know whether there is anything to delete.
    message = st.session_state.pop("delete_message", None)
    if message is not None:
        (st.success if message[0] == "success" else st.error)(message[1])
    faces: list[dict[str, Any]] = []
    with reported_errors():
        faces = load_my_faces(client)
    with reported_errors():
        if st.session_state.get("face") is None:
            render_selfie_input(client)
            if st.session_state.get("face") is not None:  # Just uploaded: list it with the others.
                faces = load_my_faces(client)
    if st.session_state.get("face_ids"):  # Before the projection wait: deleting works while it runs.
        delete_slot.button(
            "Delete my photos", key="delete-photos", icon=":material/delete:", on_click=_delete_clicked, args=(client,)
        )
    if st.session_state.get("face") is None:
        if st.session_state.get("face_ids"):  # Another photo is being chosen: the photos and try-ons stay in view.
            with reported_errors():
                render_my_photos(client, faces)
            with reported_errors():
                render_history(client)
        return
    with reported_errors():
        follow_projection(client)
    face = st.session_state["face"]
    with reported_errors():
        render_face(client, face)
        if st.button("Use another photo"):
            for key in FACE_STATE_KEYS:
                st.session_state.pop(key, None)
            st.rerun()
    st.divider()
    with reported_errors():
        render_edits(client, face)
    with reported_errors():
        render_borrow(client, face)
    st.divider()
    with reported_errors():
        render_tryon(client, face)
    with reported_errors():
        render_my_photos(client, faces)
    with reported_errors():
        render_history(client)
