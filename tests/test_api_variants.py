"""POST /v1/variants (designer scope): every mode through HTTP, each variant stored as the caller's
outfit with its latent and params; bad input is a 400 that says what is allowed."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import shopper

from tryon.db import repositories as repo
from tryon.services.storage import load_latent

BASE = {"category": "Shirts", "colour": "Blue", "gender": "Men", "view": "flat", "seed": 3, "truncation": 0.8}
OTHER = {"category": "Jeans", "colour": "Black", "seed": 9}


def key(client: TestClient, *scopes: str) -> dict[str, str]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.sessions.begin() as session:
        _, secret = repo.create_api_key(session, name="d", scopes=scopes or ("designer",))
    return {"X-API-Key": secret}


@pytest.mark.parametrize(
    ("extra", "count", "param"),
    [
        ({"mode": "seeds", "seeds": [1, 2]}, 2, "seed"),
        ({"mode": "truncation", "truncations": [0.0, 0.5, 1.0]}, 3, "truncation"),
        ({"mode": "mix", "other": OTHER, "layers": ["coarse", "fine"]}, 2, "layers"),
        ({"mode": "interpolate", "other": OTHER, "steps": 4}, 4, "t"),
        ({"mode": "colour", "colours": ["black", "white"]}, 2, "colour"),
    ],
)
def test_every_mode(client: TestClient, extra: dict[str, object], count: int, param: str) -> None:
    h = key(client, "designer", "shop")  # GET /v1/outfits/{id} takes the shop scope.
    r = client.post("/v1/variants", headers=h, json={"base": BASE, **extra})
    assert r.status_code == 201, r.text
    variants = r.json()["variants"]
    assert len(variants) == count
    assert all(v["params"]["mode"] == extra["mode"] and param in v["params"] for v in variants)
    first = client.get(f"/v1/outfits/{variants[0]['outfit_id']}", headers=h).json()
    assert first["image"] == variants[0]["image"]
    assert client.get(variants[-1]["image"]["url"], headers=h).status_code == 200


def test_a_mix_is_stored_with_its_latent(client: TestClient) -> None:
    h = key(client)
    body = {"base": BASE, "mode": "mix", "other": OTHER, "layers": "coarse"}
    variant = client.post("/v1/variants", headers=h, json=body).json()["variants"][0]
    assert variant["params"]["layers"] == "coarse" and variant["params"]["other"]["labels"]["articleType"] == "Jeans"
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    pipe = runtime.fashion.pipeline()
    with runtime.database.sessions() as session:
        owner = repo.find_api_key(session, key=h["X-API-Key"]).owner_id  # type: ignore[union-attr]
        outfit = repo.get_outfit(session, outfit_id=variant["outfit_id"], owner_id=owner)
        assert outfit is not None and outfit.latent_sha256 and (outfit.params or {}).get("mode") == "mix"
        ws = load_latent(runtime.blobs.get(outfit.latent_sha256))
    png = client.get(variant["image"]["url"], headers=h).content
    import io

    from PIL import Image

    again = pipe.render(ws)[0]  # The stored latent renders the stored image.
    assert np.abs(np.asarray(Image.open(io.BytesIO(png))).astype(int) - again.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"base": BASE, "mode": "mix"}, "needs a second garment"),
        ({"base": {**BASE, "colour": "Pink"}, "mode": "seeds"}, "its values are: Black, White, Blue"),
        ({"base": BASE, "mode": "colour", "colours": ["teal"]}, "its values are: Black, White, Blue"),
        ({"base": BASE, "mode": "warp"}, "mode"),
        ({"base": BASE, "mode": "interpolate", "other": OTHER, "steps": 1}, "steps"),
        ({"base": BASE, "mode": "seeds", "seeds": [-4]}, "seed must be"),
        ({"mode": "seeds"}, "base"),
    ],
)
def test_bad_requests_are_400(client: TestClient, body: dict[str, object], phrase: str) -> None:
    r = client.post("/v1/variants", headers=key(client), json=body)
    assert r.status_code == 400 and phrase in r.json()["detail"], r.text


def test_variants_need_the_designer_scope(client: TestClient) -> None:
    body = {"base": BASE, "mode": "seeds"}
    assert client.post("/v1/variants", headers=shopper(client), json=body).status_code == 403
    assert client.post("/v1/variants", headers=key(client, "shop"), json=body).status_code == 403
    assert client.post("/v1/variants", json=body).status_code == 401
