"""The S3 store and the pipeline on S3, against moto's real S3-protocol server on 127.0.0.1."""

import hashlib
import io
import json
import multiprocessing
import uuid

import dagster as dg
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
import assets_defs.factory
from resources.object_store import ObjectNotFound, StoreError
from resources.products import register_upload
from resources.s3_store import S3ObjectStore
from resources.store_resource import StoreResource
from tests.imagegen import encode, product_photo
from tests.s3server import S3TestServer, materialize_in_process
from tests.storecheck import check_store


@pytest.fixture
def bucket(server):
    name = f"adgen-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_resource(server, bucket):
    return StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=server.resource())


@pytest.fixture
def s3(s3_resource):
    return s3_resource.get_store()


def add_s3_product(store, instance, name="kettle.jpg", details=None):
    store.put(f"uploads/{name}", encode(product_photo(), "JPEG", quality=92))
    if details:
        store.put(f"uploads/{name}.json", json.dumps(details).encode())
    pid = register_upload(store, f"uploads/{name}").product_id
    instance.add_dynamic_partitions("products", [pid])
    return pid


def materialize(pid, resource, instance, run_config=None, raise_on_error=True):
    return dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(resource), instance=instance,
                          run_config=run_config or {}, raise_on_error=raise_on_error)


def cache_status(result):
    return {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata["cache"].value
            for e in result.get_asset_materialization_events()}


def test_store_contract(s3, server, bucket):
    s3.put("products/a/x.png", b"one", "image/png")
    assert s3.get("products/a/x.png") == b"one"
    assert s3.info("products/a/x.png").size == 3 and s3.info("nope") is None
    raw = server.client().get_object(Bucket=bucket, Key="shop/products/a/x.png")
    assert raw["ContentType"] == "image/png"  # really under the prefix
    v1 = s3.info("products/a/x.png").version
    s3.put("products/a/x.png", b"two")
    assert s3.info("products/a/x.png").version != v1
    assert s3.digest("products/a/x.png") == hashlib.sha256(b"two").hexdigest() and s3.digest("nope") is None
    assert s3.put_if_absent("cache/k", b"first") and not s3.put_if_absent("cache/k", b"second")
    assert s3.get("cache/k") == b"first"
    with pytest.raises(ObjectNotFound):
        s3.get("products/missing.png")
    with pytest.raises(ValueError):
        s3.put("../escape", b"x")
    s3.delete("cache/k")
    assert not s3.exists("cache/k")
    assert s3.uri("products/a/x.png") == f"s3://{bucket}/shop/products/a/x.png"


def test_listing_pages_across_more_than_one_s3_page(s3):
    for i in range(23):
        s3.put(f"uploads/{i:03d}.jpg", b"x")
    page = s3.list_page("uploads/", limit=10)
    assert len(page.objects) == 10 and page.next_start_after == "uploads/009.jpg"
    assert [o.key for o in s3.list("uploads/", page_size=10)] == [f"uploads/{i:03d}.jpg" for i in range(23)]


def test_conditional_write_fallback_for_servers_without_it(server, bucket):
    client = server.client()

    class NoConditional:
        def __getattr__(self, name):
            return getattr(client, name)

        def put_object(self, **kw):
            if "IfNoneMatch" in kw:
                raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no"}}, "PutObject")
            return client.put_object(**kw)

    store = S3ObjectStore(NoConditional(), bucket)
    assert store.put_if_absent("k", b"a") and not store.put_if_absent("k", b"b")
    assert store.get("k") == b"a" and store._conditional_writes is False


def test_missing_bucket_and_unreachable_endpoint_name_the_setting(server):
    store = StoreResource(kind="s3", bucket="no-such-bucket", s3=server.resource()).get_store()
    with pytest.raises(StoreError, match="no-such-bucket.*ADGEN_STORE__BUCKET"):
        store.check()
    with pytest.raises(StoreError, match="ADGEN_STORE__BUCKET"):
        store.get("uploads/a.jpg")
    dead = S3TestServer().start()
    dead.stop()  # a port where nothing listens any more
    store = StoreResource(kind="s3", bucket="b", s3=dead.resource(max_attempts=1)).get_store()
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint .*ADGEN_STORE__ENDPOINT_URL"):
        store.get("uploads/a.jpg")
    with pytest.raises(StoreError, match="ADGEN_STORE__BUCKET"):
        StoreResource(kind="s3", bucket="", s3=server.resource()).get_store()


def test_whole_graph_on_s3_with_cache_hits_and_downstream_recompute(s3, s3_resource, instance):
    pid = add_s3_product(s3, instance, details={"headline": "Tea time", "price": "$24"})
    assert set(cache_status(materialize(pid, s3_resource, instance)).values()) == {"miss"}
    keys = {o.key for o in s3.list(f"products/{pid}/")}
    for name in ("product_image.png", "nobg_image.png", "mask.png", "background.png", "composite.png",
                 "retouched.png", "analysis.json", "ads/1080x1080.png", "ads/1200x628.html"):
        assert f"products/{pid}/{name}" in keys
    assert Image.open(io.BytesIO(s3.get(f"products/{pid}/ads/1080x1350.png"))).size == (1080, 1350)
    assert set(cache_status(materialize(pid, s3_resource, instance)).values()) == {"hit"}
    changed = cache_status(materialize(pid, s3_resource, instance, {"ops": {"retouched": {"config": {"contrast": 1.2}}}}))
    assert {k for k, v in changed.items() if v == "miss"} == {"retouched", "analysis", "ad_creatives"}


def test_server_stopping_mid_run_fails_clearly_and_rerun_completes(server, s3, s3_resource, instance, monkeypatch):
    pid = add_s3_product(s3, instance, name="lamp.jpg")
    real = assets_defs.factory.build_step

    def stop_then_retouch(stage, params, backend=None):
        compute = real(stage, params, backend)
        if stage.name != "retouched":
            return compute

        def wrapped(files, ctx):
            server.stop()  # the endpoint goes away while the run is in flight
            return compute(files, ctx)

        return wrapped

    monkeypatch.setattr(assets_defs.factory, "build_step", stop_then_retouch)
    result = materialize(pid, s3_resource, instance, raise_on_error=False)
    monkeypatch.undo()
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "retouched failed for product 'lamp'" in message and "ADGEN_STORE__ENDPOINT_URL" in message
    server.start()  # same port: the server comes back
    check_store(s3)
    assert not s3.exists(f"products/{pid}/retouched.png")
    rerun = materialize(pid, s3_resource, instance)
    status = cache_status(rerun)
    assert status["product_image"] == status["composite"] == "hit" and status["retouched"] == "miss"
    check_store(s3)


def test_two_concurrent_materializations_of_one_partition_are_consistent(server, bucket, s3, instance):
    pid = add_s3_product(s3, instance, name="mug.jpg")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=materialize_in_process, args=(pid, bucket, server.endpoint, "shop/")) for _ in range(2)]
    [p.start() for p in procs]
    [p.join(timeout=300) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0]
    check_store(s3)
    # the outputs are the single committed cache entry's bytes
    analysis = s3.get(f"products/{pid}/analysis.json")
    manifests = [o.key for o in s3.list("cache/analysis/") if o.key.endswith(".json")]
    assert len(manifests) == 1
    digest = json.loads(s3.get(manifests[0]))["outputs"]["analysis.json"]
    assert s3.get(f"cache/analysis/blobs/{digest}") == analysis
