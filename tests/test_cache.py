"""The content-addressed cache: hits skip work, one setting change recomputes only downstream."""

import os

import dagster as dg
import pytest

from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.cache import ResultCache, cache_key, sha256_hex
from resources.object_store import LocalObjectStore
from resources.store_resource import StoreResource

STAGE_OF = {"product_image": "product_image", "nobg_image": "segmentation", "mask": "segmentation",
            "background": "background", "composite": "composite", "retouched": "retouched",
            "analysis": "analysis", "ad_creatives": "ad_creatives"}


def cache_status(result) -> dict[str, str]:
    out = {}
    for ev in result.get_asset_materialization_events():
        md = ev.step_materialization_data.materialization.metadata
        out[ev.asset_key.to_user_string()] = md["cache"].value
    return out


def materialize(pid, store_resource, instance, run_config=None):
    result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(store_resource),
                            instance=instance, run_config=run_config or {})
    assert result.success
    return result


def test_second_run_hits_and_a_retouch_change_recomputes_only_downstream(store, store_resource, instance, add_product):
    pid = add_product("kettle.jpg", details={"headline": "Tea time"})
    first = cache_status(materialize(pid, store_resource, instance))
    assert set(first.values()) == {"miss"}
    outputs = {o.key: store.get(o.key) for o in store.list(f"products/{pid}/")}
    second = cache_status(materialize(pid, store_resource, instance))
    assert set(second.values()) == {"hit"}
    assert {o.key: store.get(o.key) for o in store.list(f"products/{pid}/")} == outputs
    third = cache_status(materialize(pid, store_resource, instance, {"ops": {"retouched": {"config": {"brightness": 1.2}}}}))
    assert {k for k, v in third.items() if v == "miss"} == {"retouched", "analysis", "ad_creatives"}
    assert store.get(f"products/{pid}/retouched.png") != outputs[f"products/{pid}/retouched.png"]
    assert store.get(f"products/{pid}/composite.png") == outputs[f"products/{pid}/composite.png"]


def test_identical_uploads_share_work_but_not_the_seeded_background(store, store_resource, instance, add_product):
    a = add_product("a.jpg")
    b = add_product("b.jpg")  # same bytes, another product
    materialize(a, store_resource, instance)
    status = cache_status(materialize(b, store_resource, instance))
    assert status["product_image"] == status["nobg_image"] == "hit"
    assert status["background"] == "miss"  # the default seed comes from the product id


def test_cache_can_be_switched_off(store_resource, instance, add_product):
    pid = add_product("lamp.jpg")
    off = StoreResource(root=store_resource.root, cache=False)
    materialize(pid, off, instance)
    assert set(cache_status(materialize(pid, off, instance)).values()) == {"off"}


def test_key_depends_on_every_part():
    base = dict(stage="s", version="1", backend="classical", model_id="", params={"a": 1}, input_digests={"x": "d1"})
    k = cache_key(**base)
    for change in ({"stage": "t"}, {"version": "2"}, {"backend": "birefnet"}, {"model_id": "m"},
                   {"params": {"a": 2}}, {"input_digests": {"x": "d2"}}):
        assert cache_key(**{**base, **change}) != k
    assert cache_key(**{**base, "params": {"a": 1}}) == k


def test_entries_are_write_once_and_damage_is_a_miss(tmp_path):
    store = LocalObjectStore(tmp_path)
    cache = ResultCache(store)
    assert cache.put("st", "k1", {"o.png": b"first"}, {"w": 1})
    assert not cache.put("st", "k1", {"o.png": b"second"}, {"w": 2})  # first writer wins
    entry = cache.get("st", "k1")
    assert entry.outputs == {"o.png": b"first"} and entry.metadata == {"w": 1}
    store.put(f"cache/st/blobs/{sha256_hex(b'first')}", b"bit rot")
    assert cache.get("st", "k1") is None
    assert cache.get("st", "missing") is None


def xattrs_supported(path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"x")
    try:
        os.setxattr(probe, "user.adgen.probe", b"1")
        return True
    except (OSError, AttributeError):
        return False


@pytest.fixture
def needs_xattrs(tmp_path):
    if not xattrs_supported(tmp_path):
        pytest.skip("this filesystem has no user extended attributes: digests are recomputed by reading")


@pytest.mark.usefixtures("needs_xattrs")
def test_a_hit_reads_no_image_and_rewrites_nothing_unchanged(store, store_resource, instance, add_product, monkeypatch):
    pid = add_product("vase.jpg")
    materialize(pid, store_resource, instance)
    reads, writes = [], []
    real_get, real_put = LocalObjectStore.get, LocalObjectStore.put
    monkeypatch.setattr(LocalObjectStore, "get", lambda self, key, max_bytes=None: reads.append(key) or real_get(self, key, max_bytes))
    monkeypatch.setattr(LocalObjectStore, "put", lambda self, key, data, ct=None: writes.append(key) or real_put(self, key, data, ct))
    assert set(cache_status(materialize(pid, store_resource, instance)).values()) == {"hit"}
    assert [k for k in reads if k.endswith(".png")] == [] and writes == []
    # an output that no longer matches the cache (deleted by hand) is restored from the cache
    store.delete(f"products/{pid}/retouched.png")
    assert set(cache_status(materialize(pid, store_resource, instance)).values()) == {"hit"}
    assert writes == [f"products/{pid}/retouched.png"]


@pytest.mark.usefixtures("needs_xattrs")
def test_store_records_digests_it_can_return_without_reading(store):
    store.put("products/p/a.png", b"abc")
    assert store.digest("products/p/a.png") == sha256_hex(b"abc")
    assert store.digest("products/p/missing.png") is None


def test_a_run_that_loses_the_cache_race_writes_the_winners_bytes(store):
    """Two runs computing one key with a non-deterministic model: the product's files match the committed entry."""
    from types import SimpleNamespace

    from adgen_dagster.stage_runner import run_stage, stage_key
    from adgen_dagster.stages import StageContext, stage_named

    cache = ResultCache(store)
    stage = stage_named("background")
    params, ctx, flux = stage.params(), StageContext("p1"), SimpleNamespace(name="flux", params=None)
    store.put("products/p1/product_image.png", b"img")
    store.put("products/p1/details.json", b"{}")
    key, _ = stage_key(store, cache, stage, params, ctx, {"upload": b"in"}, flux)

    def compute(files, ctx):
        cache.put("background", key, {"background.png": b"winner"}, {"who": "winner"})  # the other run, meanwhile
        return {"background.png": b"loser"}, {"who": "loser"}

    r = run_stage(store, cache, stage, params, ctx, compute, {"upload": b"in"}, flux)
    assert r.key == key and r.cache == "miss"
    assert store.get("products/p1/background.png") == b"winner" and r.metadata == {"who": "winner"}


def test_a_new_hub_snapshot_of_the_weights_changes_the_keys(tmp_path, monkeypatch):
    from adgen_dagster.imaging.segment import SegmentParams
    from adgen_dagster.models.params import BiRefNetParams
    from adgen_dagster.stage_runner import settings_key

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    params = BiRefNetParams(model="someone/some-net")
    before = settings_key("segmentation", "1", SegmentParams(), "birefnet", params)
    repo = tmp_path / "hub" / "models--someone--some-net"
    for rev in ("aaa111", "bbb222"):
        (repo / "snapshots" / rev).mkdir(parents=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(rev)
        key = settings_key("segmentation", "1", SegmentParams(), "birefnet", params)
        assert key != before
        before = key
    # batch_size only changes speed: same key
    assert settings_key("segmentation", "1", SegmentParams(), "birefnet", params.model_copy(update={"batch_size": 9})) == key
