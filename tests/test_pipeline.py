"""The whole asset graph materialized with Dagster on the local store."""

import json

import dagster as dg
import numpy as np

from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from adgen_dagster.encoding import decode_png
from tests.imagegen import encode, product_photo

AD_SIZES = {"1080x1080": (1080, 1080), "1080x1350": (1080, 1350), "1080x1920": (1080, 1920), "1200x628": (1200, 628)}


def run(pid, store_resource, instance, run_config=None):
    return dg.materialize(
        PIPELINE_ASSETS,
        partition_key=pid,
        resources=location_resources(store_resource),
        instance=instance,
        run_config=run_config or {},
        raise_on_error=False,
    )


def failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def test_two_products_materialize_every_asset(store, store_resource, instance, add_product):
    a = add_product("red-kettle.jpg", details={"headline": "Tea time", "price": "$24", "style": "warm beige"})
    b = add_product("blue-mug.png", data=encode(product_photo(colour=(40, 80, 200), seed=1), "PNG"),
                    details={"headline": "여름 한정 머그컵", "subline": "도자기 · 350ml", "price": "₩15,000"})
    for pid in (a, b):
        result = run(pid, store_resource, instance)
        assert result.success, failure_messages(result)
        mats = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        assert set(mats) == {"product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"}
        for key, ev in mats.items():
            md = ev.step_materialization_data.materialization.metadata
            assert "output" in md and "timings_ms" in md, key
        checks = result.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {"mask_coverage", "cutout_quality", "analysis_schema", "ad_text_contrast"}
        assert all(c.passed for c in checks), [(c.check_name, c.description) for c in checks]

        def img(name):
            return decode_png(store.get(f"products/{pid}/{name}"))

        assert img("product_image.png").mode == "RGB"
        assert img("nobg_image.png").mode == "RGBA"
        mask = np.asarray(img("mask.png"))
        assert img("mask.png").mode == "L" and 0.02 < mask.mean() / 255 < 0.6
        assert img("background.png").size == img("composite.png").size == img("retouched.png").size == (1024, 1024)
        analysis = Analysis.model_validate(json.loads(store.get(f"products/{pid}/analysis.json")))
        assert analysis.text_contrast >= 4.5
        for name, size in AD_SIZES.items():
            assert img(f"ads/{name}.png").size == size
            html = store.get(f"products/{pid}/ads/{name}.html").decode("utf-8")
            assert f'data-size="{name}"' in html and "data:image/jpeg;base64," in html  # self-contained page
    assert "여름 한정 머그컵" in store.get(f"products/{b}/ads/1080x1080.html").decode("utf-8")
    # the upload itself is never modified
    assert store.get("uploads/red-kettle.jpg")[:3] == b"\xff\xd8\xff"


def test_bad_upload_fails_only_its_partition_with_a_readable_message(store, store_resource, instance, add_product):
    good = add_product("good.jpg")
    bad = add_product("broken.jpg", data=b"this is a text file, not a photo\n" * 20)
    assert run(good, store_resource, instance).success
    result = run(bad, store_resource, instance)
    assert not result.success
    [msg] = failure_messages(result)
    assert "product_image failed for product 'broken'" in msg and "broken.jpg: not an image" in msg
    assert store.get_or_none("products/broken/product_image.png") is None
    assert store.exists("products/good/ads/1080x1080.png")


def test_bad_reupload_keeps_the_previous_outputs(store, store_resource, instance, add_product):
    pid = add_product("kettle.jpg")
    assert run(pid, store_resource, instance).success
    before = {k: store.get(f"products/{pid}/{k}") for k in ("product_image.png", "retouched.png", "ads/1080x1080.png")}
    data = store.get("uploads/kettle.jpg")
    store.put("uploads/kettle.jpg", data[: len(data) // 3])  # a truncated re-upload
    result = run(pid, store_resource, instance)
    assert not result.success and "kettle.jpg: the image" in failure_messages(result)[0]
    assert all(store.get(f"products/{pid}/{k}") == v for k, v in before.items())


def test_malformed_sidecar_fails_with_the_sidecar_named(store_resource, instance, add_product):
    pid = add_product("mug.jpg", details='{"headline": "Mug", "price": ')
    result = run(pid, store_resource, instance)
    assert not result.success
    assert "mug.jpg.json: not valid UTF-8 JSON" in failure_messages(result)[0]


def test_run_config_overrides_settings_and_unknown_backend_is_clear(store, store_resource, instance, add_product):
    pid = add_product("lamp.jpg")
    result = run(pid, store_resource, instance, {"ops": {"composite": {"config": {"placement": "top"}}}})
    assert result.success
    mask = np.asarray(decode_png(store.get(f"products/{pid}/composite_mask.png")))
    rows = np.where(mask.max(axis=1) > 127)[0]
    assert rows.mean() < mask.shape[0] / 2  # product sits in the upper half
    result = run(pid, store_resource, instance, {"ops": {"segmentation": {"config": {"backend": "birefnet-typo"}}}})
    assert not result.success
    assert "ADGEN_SEGMENTER" in failure_messages(result)[0]
