"""The generated catalog shows an item under a label only when our fashion feature network reads that
label in its image: candidates over seeds, the first it agrees with kept, its scores recorded."""

from __future__ import annotations

import dataclasses
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pipeline_helpers import save_tiny_fashion_models
from service_helpers import service_settings, shopper

from tryon.api import create_app
from tryon.fashion import FashionPipeline
from tryon.fashion.catalog import candidate_seeds, checked_columns, read_labels, verify_catalog_item
from tryon.services.fashion import CATALOG_PER_GROUP

CANDIDATES = 4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shipped() -> FashionPipeline:
    return FashionPipeline.from_checkpoint(None)


def reads(pipe: FashionPipeline, image: np.ndarray, labels: dict[str, str]) -> bool:
    reading = read_labels(pipe, [image])[0]
    return all(reading[c][0] == labels[c] for c in checked_columns(pipe))


def test_the_first_candidate_the_shipped_classifier_agrees_with_is_kept(shipped: FashionPipeline) -> None:
    assert checked_columns(shipped) == ("articleGroup", "colourGroup")
    spec = shipped.spec(category="tops", colour="white", gender="Men", view="flat", seed=0)
    seeds = [1, 77, 153, 229, 305, 381, 457, 533]  # Catalog position 1 of 76; its first seeds read otherwise.
    pick = verify_catalog_item(shipped, "white tops", spec, seeds, checked_columns(shipped))
    assert pick.kept and pick.tried > 1 and pick.spec.seed == seeds[pick.tried - 1]
    assert pick.reading == {"articleGroup": "tops", "colourGroup": "white"}
    assert reads(shipped, pick.image, spec.labels)
    for seed in seeds[: pick.tried - 1]:  # Every earlier candidate was rightly passed over.
        image = shipped.generate_specs([dataclasses.replace(spec, seed=seed)])[1][0]
        assert not reads(shipped, image, spec.labels), seed
    fresh = shipped.generate_specs([pick.spec])[1][0]
    assert (fresh == pick.image).all()  # The stored seed gives the stored image.
    assert set(pick.scores) == {"articleGroup", "colourGroup"} and all(0.0 < p <= 1.0 for p in pick.scores.values())


def test_an_item_the_classifier_never_reads_is_left_out(shipped: FashionPipeline) -> None:
    # On-model bottoms: the shipped generator's models read as tops to the classifier.
    spec = shipped.spec(category="bottoms", colour="black", gender="Men", view="on_model", seed=0)
    pick = verify_catalog_item(shipped, "black bottoms", spec, [0, 1, 2], checked_columns(shipped))
    assert not pick.kept and pick.tried == 3 and pick.reading["articleGroup"] != "bottoms"


def test_the_service_catalog_holds_only_items_its_classifier_reads(tmp_path: Path) -> None:
    checkpoint = save_tiny_fashion_models(tmp_path / "models")
    pipe = FashionPipeline.from_checkpoint(checkpoint)
    plan = pipe.catalog_specs(CATALOG_PER_GROUP)
    expected = []  # What the rule keeps, worked out here from the candidates' readings.
    for position, (name, spec) in enumerate(plan):
        for seed in candidate_seeds(position, len(plan), CANDIDATES):
            candidate = dataclasses.replace(spec, seed=seed)
            if reads(pipe, pipe.generate_specs([candidate])[1][0], spec.labels):
                expected.append((name, seed))
                break
    assert 0 < len(expected) < len(plan), "the fixture should keep some items and leave some out"

    settings = service_settings(tmp_path, fashion_checkpoint=checkpoint, catalog_candidates=CANDIDATES)
    with TestClient(create_app(settings)) as client:
        h = shopper(client)
        page = client.get("/v1/catalog?per_page=100", headers=h).json()
        assert page["total"] == len(expected)
        assert [(i["name"], i["seed"]) for i in page["items"]] == expected
        for item in page["items"]:
            record = item["params"]["classifier"]
            assert record["kept"] and record["checked"] == ["articleType", "baseColour"]
            assert set(record["scores"]) == {"articleType", "baseColour"} and record["candidates_tried"] >= 1
            png = client.get(item["image"]["url"], headers=h).content
            assert reads(pipe, np.asarray(Image.open(BytesIO(png)).convert("RGB")), item["labels"]), item["name"]
