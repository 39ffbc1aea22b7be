"""The stage registry is the one list of stages, and a new stage takes three pieces.

A watermark between `retouched` and `analysis` (tests/watermark_stage.py: its core module
and its registry entry; its asset plan here) runs through the same runner `adgen run`
uses, becomes a Dagster asset whose deps follow from the files it reads and writes, and
the later stages read its output in place of the retouched image, without any edit to them.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest

from adgen_dagster.encoding import decode_png, encode_output
from adgen_dagster.settings import get_settings
from adgen_dagster.staleness import current_settings_keys
from adgen_dagster.stage_runner import chain_for, run_chain
from adgen_dagster.stages import STAGES, StageContext, deps, registry, stage_named
from assets_defs import PLANS
from assets_defs.factory import AssetPlan, build_assets
from adgen_dagster.definitions import location_resources
from tests.imagegen import encode, product_photo
from tests.watermark_stage import WATERMARK, WatermarkParams, watermark

PLAN = AssetPlan("watermark", description="The retouched image with a watermark in its corner.")


def with_watermark():
    after = [s.name for s in STAGES].index("retouched") + 1
    return registry(*STAGES[:after], WATERMARK, *STAGES[after:])


def asset_deps(assets) -> dict[str, set[str]]:
    return {k.to_user_string(): {d.to_user_string() for d in v} for a in assets for k, v in a.asset_deps.items()}


def test_every_stage_reads_only_what_an_earlier_stage_writes():
    assert [s.name for s in STAGES] == ["product_image", "segmentation", "background", "composite", "retouched",
                                        "analysis", "ad_creatives"]
    keys = [k for s in STAGES for k in s.asset_keys]
    assert len(keys) == len(set(keys))
    assert {s.name: deps(s) for s in STAGES} == {
        "product_image": [], "segmentation": ["product_image"], "background": ["product_image"],
        "composite": ["nobg_image", "background"], "retouched": ["composite", "background"],
        "analysis": ["retouched", "composite"],
        "ad_creatives": ["retouched", "analysis", "product_image"],  # details.json: written by product_image
    }
    late = registry(stage_named("analysis"), *STAGES)  # analysis before what it reads
    with pytest.raises(ValueError, match="analysis.*retouched.png"):
        deps(late[0], late)


def test_the_dagster_graph_is_the_registrys():
    from assets_defs import PIPELINE_ASSETS

    assert [a.op.name for a in PIPELINE_ASSETS] == [s.name for s in STAGES]
    assert asset_deps(PIPELINE_ASSETS) == {key: set(deps(s)) for s in STAGES for key in s.asset_keys}
    gpu = {a.op.name for a in PIPELINE_ASSETS if a.op.pool == "gpu"}
    assert gpu == {s.name for s in STAGES if s.backend} == {"segmentation", "background", "analysis"}


@pytest.fixture(scope="module")
def chained():
    stages = with_watermark()
    photo = encode(product_photo((160, 120), colour=(40, 80, 200), seed=3), "JPEG", quality=92)
    return stages, photo, run_chain(chain_for(get_settings(), stages), StageContext("mug", "mug.jpg"),
                                    {"upload": photo, "sidecar": b""})


def test_a_new_stage_runs_in_the_chain_and_later_stages_read_its_output(chained):
    stages, _, res = chained
    assert list(res.metadata) == [s.name for s in stages]
    assert [s.name for s in stages].index("watermark") == [s.name for s in stages].index("retouched") + 1
    retouched, marked = decode_png(res.files["retouched.png"]), decode_png(res.files["watermarked.png"])
    assert np.array_equal(np.asarray(marked), np.asarray(watermark(retouched, WatermarkParams())))
    assert marked.getpixel((0, 0)) == (255, 0, 255) and retouched.getpixel((0, 0)) != (255, 0, 255)

    # analysis (unchanged entry, unchanged step) analysed the watermarked image, not the retouched one
    analysis = stage_named("analysis", stages)
    assert analysis.reads == {"retouched.png": "watermarked.png"} and stage_named("analysis").reads == {}
    [(_, step)] = chain_for(get_settings(), [analysis])

    def analysed(img) -> bytes:
        return step({"retouched.png": img, "composite_mask.png": res.files["composite_mask.png"]},
                    StageContext("mug"))[0]["analysis.json"]

    assert analysed(marked) == res.files["analysis.json"] != analysed(retouched)
    assert "watermark" in current_settings_keys(get_settings(), stages)


def test_a_new_stage_becomes_an_asset_whose_run_matches_the_chain(chained, store, store_resource, instance):
    stages, photo, res = chained
    assets = build_assets({**PLANS, "watermark": PLAN}, get_settings(), stages)
    found = asset_deps(assets)
    assert found["watermark"] == {"retouched"}
    assert found["analysis"] == {"watermark", "composite"}
    assert found["ad_creatives"] == {"watermark", "analysis", "product_image"}

    from resources.products import register_upload

    store.put("uploads/mug.jpg", photo)
    pid = register_upload(store, "uploads/mug.jpg").product_id
    assert pid == "mug"
    instance.add_dynamic_partitions("products", [pid])
    result = dg.materialize(assets, partition_key=pid, resources=location_resources(store_resource), instance=instance)
    assert result.success
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} >= {"watermark", "analysis"}
    for name in ("watermarked.png", "analysis.json"):  # the same bytes as the chain (the runner encodes both)
        assert store.get(f"products/{pid}/{name}") == encode_output(name, res.files[name])
