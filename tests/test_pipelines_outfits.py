"""FashionPipeline: labels by friendly field or schema name (one resolver for CLI, API and jobs),
images equal to `tryon generate`'s, per-sample truncation in one pass, layer groups, the catalog plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import save_tiny_fashion_models

from tryon.errors import InputError
from tryon.fashion import LAYER_GROUPS, FashionPipeline, OutfitSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> FashionPipeline:
    return FashionPipeline.from_checkpoint(save_tiny_fashion_models(tmp_path_factory.mktemp("models")))


def test_an_outfit_is_the_image_tryon_generate_makes(pipe: FashionPipeline) -> None:
    from tryon.commands.generate import condition_vector, generate_images
    from tryon.imaging import to_uint8

    outs = pipe.generate_outfit(category="shirts", colour="Blue", gender="Women", view="on_model", seeds=[7, 8],
                                truncation=0.6)
    assert [o.seed for o in outs] == [7, 8]
    assert outs[0].labels == {"articleType": "Shirts", "baseColour": "Blue", "gender": "Women", "view": "on_model"}
    assert outs[0].ws.shape == (pipe.num_ws, 8) and outs[0].ws.dtype == np.float32
    assert outs[0].image.size == (16, 16) and set(outs[0].timings) >= {"mapping_s", "synthesis_s"}
    assert pipe.schema is not None
    c = condition_vector(10, pipe.schema.to_json(), ["articleType=Shirts", "baseColour=Blue", "gender=Women",
                                                     "view=on_model"])
    want = to_uint8(generate_images(pipe.G, [7, 8], c, truncation_psi=0.6))
    for out, ref in zip(outs, want, strict=True):
        assert np.abs(np.asarray(out.image).astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(np.asarray(outs[0].image).astype(int) - np.asarray(outs[1].image).astype(int)).max() > 10


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"category": "Hats"}, "its values are: Tshirts, Shirts, Jeans"),
        ({"colour": "pink"}, "its values are: Black, White, Blue"),
        ({"labels": {"season": "Summer"}}, "unknown label 'season'; the labels are: articleType, baseColour"),
        ({}, "give at least one label"),
        ({"category": "Jeans", "labels": {"articleType": "Shirts"}}, "given twice"),
        ({"category": "Jeans", "seeds": [-1]}, "seed must be an integer"),
        ({"category": "Jeans", "seeds": []}, "at least one seed"),
        ({"category": "Jeans", "truncation": 3.0}, "truncation must be"),
    ],
)
def test_bad_requests_say_what_is_allowed(pipe: FashionPipeline, kwargs: dict[str, object], phrase: str) -> None:
    with pytest.raises(InputError, match=phrase.replace("(", r"\(")):
        pipe.generate_outfit(**kwargs)  # type: ignore[arg-type]


def test_friendly_fields_map_onto_the_schema(pipe: FashionPipeline) -> None:
    assert pipe.field_columns() == {"category": "articleType", "colour": "baseColour", "gender": "gender",
                                    "view": "view"}
    assert pipe.resolve_labels(category="jeans", labels={"BASECOLOUR": "white"}) == {
        "articleType": "Jeans",
        "baseColour": "White",
    }
    assert pipe.friendly_fields({"articleType": "Jeans"}) == {"category": "Jeans", "colour": None, "gender": None,
                                                             "view": None}


def test_the_api_service_uses_the_same_resolver() -> None:
    import tryon.fashion.outfits as outfits
    import tryon.services.fashion as service

    assert service.FIELD_ALIASES is outfits.FIELD_ALIASES and service.OutfitSpec is outfits.OutfitSpec
    assert not hasattr(service.FashionService, "_resolve_columns")


def test_per_sample_truncation_in_one_pass_equals_one_by_one(pipe: FashionPipeline) -> None:
    cases = [(0, 1.0), (1, 0.3), (2, 0.0)]
    specs = [OutfitSpec(labels={"articleType": "Jeans"}, seed=s, truncation=p) for s, p in cases]
    together = pipe.map_specs(specs)
    for i, spec in enumerate(specs):
        alone = pipe.map_specs([spec])[0]
        assert float((together[i] - alone).abs().max()) < 1e-5
    mean = pipe.map_specs([OutfitSpec(labels={"articleType": "Jeans"}, seed=9, truncation=0.0)])[0]
    assert float((mean - together[2]).abs().max()) < 1e-5  # psi 0: the seed no longer matters.


def test_layer_groups_split_the_ws_in_order(pipe: FashionPipeline) -> None:
    groups = [pipe.layer_indices(g) for g in LAYER_GROUPS]
    assert all(groups) and [i for g in groups for i in g] == list(range(pipe.num_ws))
    with pytest.raises(InputError, match="coarse, middle, fine"):
        pipe.layer_indices("medium")


def test_garment_and_face_layer_groups_are_one_definition(pipe: FashionPipeline) -> None:
    from tryon.face.directions import resolve_layers

    assert pipe.resolution == 16  # Below 64 px, where the two used to disagree.
    for group in LAYER_GROUPS:
        assert pipe.layer_indices(group) == list(range(*resolve_layers(group, pipe.num_ws)))


def test_shipped_model_groups_follow_nvlabs_split() -> None:
    pipe = FashionPipeline.from_checkpoint(None)
    ranges = pipe.G.synthesis.block_ws_ranges()
    assert pipe.layer_indices("coarse") == list(range(0, ranges[16][0]))
    assert pipe.layer_indices("middle") == list(range(ranges[16][0], ranges[64][0]))
    assert pipe.layer_indices("fine") == list(range(ranges[64][0], pipe.num_ws))
    outs = pipe.generate_outfit(category="tops", colour="blue", gender="Men", view="on_model", seeds=[0])
    assert outs[0].image.size == (64, 64)


def test_catalog_plan_is_deterministic_and_spreads_colours(pipe: FashionPipeline) -> None:
    plan = pipe.catalog_specs(per_group=2)
    assert plan == pipe.catalog_specs(per_group=2)
    assert len(plan) == 3 * 2 * 2 * 2  # category x gender x view x per_group.
    colours = {spec.labels["baseColour"] for _, spec in plan}
    assert colours == {"Black", "White", "Blue"}
    assert len({spec.seed for _, spec in plan}) == len(plan)
    assert plan[0][0] == "Black Tshirts (Men, flat)"


def test_the_feature_net_and_framing_have_one_copy() -> None:
    import datasets.fashion
    import training.feature_net
    import tryon.feature_net
    import tryon.vision.framing

    assert training.feature_net.FeatureNet is tryon.feature_net.FeatureNet
    assert datasets.fashion.foreground_box is tryon.vision.framing.foreground_box
    assert datasets.fashion.estimate_background is tryon.vision.framing.estimate_background


def test_the_core_package_does_not_import_training_or_datasets(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, tryon.pipelines, tryon.fashion, tryon.composite, tryon.feature_net, tryon.commands.outfits\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'datasets'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_shipped_catalog_offers_only_what_the_training_data_holds() -> None:
    """The shipped model records its training data's label combinations: the catalog offers only the
    category x gender x view groups with at least CATALOG_MIN_IMAGES images there (no shoes or bags
    "on a model"), each in its own most frequent colours."""
    from tryon.fashion.outfits import CATALOG_MIN_IMAGES

    pipe = FashionPipeline.from_checkpoint(None)
    assert pipe.distribution is not None and pipe.distribution.total > 8000
    plan = pipe.catalog_specs(per_group=3)
    assert plan == pipe.catalog_specs(per_group=3) and len({spec.seed for _, spec in plan}) == len(plan)
    groups = {tuple(spec.labels[k] for k in ("articleGroup", "gender", "view")) for _, spec in plan}
    assert ("tops", "Men", "on_model") in groups and ("footwear", "Men", "flat") in groups
    assert not {g for g in groups if g[0] in ("footwear", "bags", "accessories") and g[2] == "on_model"}
    for _, spec in plan:
        group = {k: spec.labels[k] for k in ("articleGroup", "gender", "view")}
        assert pipe.distribution.count(group) >= CATALOG_MIN_IMAGES, group
    tops = [spec.labels["colourGroup"] for _, spec in plan
            if (spec.labels["articleGroup"], spec.labels["gender"], spec.labels["view"]) == ("tops", "Men", "on_model")]
    assert tops == ["blue", "white", "black"], "the three colours of men's tops on a model the data holds most"


def test_one_on_model_check_for_every_caller() -> None:
    from tryon.fashion.outfits import NotOnModelError, require_on_model, view_of

    require_on_model({"view": "on_model"})
    require_on_model({"View": "ON_MODEL"})  # Names and values in any case.
    require_on_model({"articleType": "Jeans"})  # No view named: it may well show a model.
    require_on_model(None)
    with pytest.raises(NotOnModelError, match="the catalog item is a Flat image: it shows no model"):
        require_on_model({"VIEW": "Flat"}, "catalog item")
    with pytest.raises(InputError):  # A NotOnModelError is bad input (the API answers 422).
        require_on_model({"pose": "flat"}, view_column="pose")
    assert view_of({"pose": "flat", "view": "on_model"}, view_column="pose") == "flat"
