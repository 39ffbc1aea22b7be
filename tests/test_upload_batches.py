"""The upload sensor batches what one tick finds and never asks for the same upload version twice."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as END
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as START

from adgen_dagster.sensors import split_requests, upload_sensor
from adgen_dagster.settings import get_settings
from adgen_dagster.sensors.upload_batches import Wanted, batch_run_key, plan
from adgen_dagster.definitions import location_resources
from tests.imagegen import encode, product_photo
from tests import sensor_ticks
from tests.sensor_ticks import instance  # noqa: F401 (the in-memory instance fixture)

JPEG = encode(product_photo((32, 24)), "JPEG", quality=80)



def tick(instance, resource, cursor=None):
    return sensor_ticks.tick(upload_sensor, instance, resource, cursor)


def spans(result) -> list[tuple[str, str]]:
    return [(r.tags[START], r.tags[END]) if START in r.tags else (r.partition_key, r.partition_key)
            for r in result.run_requests]


def w(pid: str, v: str = "1") -> Wanted:
    return Wanted(pid, f"uploads/{pid}.jpg", f"{pid}:{v}:-")


def test_plan_batches_new_products_and_stretches_of_known_ones():
    known = [f"k{i}" for i in range(10)]
    new_keys, requests = plan([w("n1"), w("k3"), w("n2"), w("k4"), w("k7"), w("n3"), w("k5")], known, batch_size=2)
    assert new_keys == ["n1", "n2", "n3"]  # appended after k9, in this order
    got = [(r.tags.get(START, r.partition_key), r.tags.get(END, r.partition_key)) for r in requests]
    assert got == [("k3", "k4"), ("k5", "k5"), ("k7", "k7"), ("n1", "n2"), ("n3", "n3")]
    single = next(r for r in requests if r.partition_key == "k7")
    assert single.run_key == "k7:1:-" and single.tags["adgen/upload"] == "uploads/k7.jpg"
    pair = requests[0]
    assert pair.partition_key is None and pair.run_key == batch_run_key([w("k3"), w("k4")]) == batch_run_key([w("k4"), w("k3")])
    assert pair.run_key != batch_run_key([w("k3"), w("k4", "2")])  # a member's new version: a new run
    assert all(r.tags["adgen/source"] == "upload" for r in requests)


def test_new_uploads_run_in_batches_once_and_reuploads_by_stretch(store, store_resource, instance, capfd):
    for i in range(25):
        store.put(f"uploads/p{i:02d}.jpg", JPEG)
    first = tick(instance, store_resource)
    pids = [f"p{i:02d}" for i in range(25)]
    assert instance.get_dynamic_partitions("products") == pids
    assert spans(first) == [("p00", "p09"), ("p10", "p19"), ("p20", "p24")]
    assert len({r.run_key for r in first.run_requests}) == 3

    capfd.readouterr()
    second = tick(instance, store_resource, first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    log = capfd.readouterr().err.strip().splitlines()  # one short summary line: counts, not keys
    assert len(log) == 1 and "25 unchanged, 0 new or changed in 0 run request(s)" in log[0] and "p07" not in log[0]

    for i in (3, 4, 5, 12):  # re-uploads: a stretch of three and one alone
        store.put(f"uploads/p{i:02d}.jpg", encode(product_photo((32, 24), seed=i), "JPEG"))
    store.put("uploads/p26.jpg", JPEG)  # and a new product
    third = tick(instance, store_resource, second.cursor)
    assert spans(third) == [("p03", "p05"), ("p12", "p12"), ("p26", "p26")]
    assert instance.get_dynamic_partitions("products")[-1] == "p26"
    assert tick(instance, store_resource, third.cursor).run_requests == []


def test_a_tick_that_was_not_committed_is_found_again_and_a_fresh_cursor_keeps_the_memory(store, store_resource, instance):
    for i in range(3):
        store.put(f"uploads/q{i}.jpg", JPEG)
    first = tick(instance, store_resource)
    retry = tick(instance, store_resource)  # the first tick's cursor never stored: nothing lost ...
    assert [r.run_key for r in retry.run_requests] == [r.run_key for r in first.run_requests]  # ... same run keys
    done = tick(instance, store_resource, retry.cursor)  # this one was stored: it commits the generation
    assert done.run_requests == []
    again = tick(instance, store_resource, None)  # a sensor without a cursor (reset, or after `make demo`)
    assert again.run_requests == [] and json.loads(again.cursor)["memory"] == json.loads(retry.cursor)["memory"]


def test_a_sensor_batch_runs_every_product_and_a_bad_photo_fails_alone(store, store_resource, instance):
    from adgen_dagster.jobs import adgen_pipeline
    from assets_defs import PIPELINE_ASSETS

    store.put("uploads/a-good.jpg", encode(product_photo((96, 96), seed=1), "JPEG"))
    store.put("uploads/b-bad.jpg", b"not a photo at all")
    store.put("uploads/c-good.jpg", encode(product_photo((96, 96), colour=(40, 80, 200), seed=2), "JPEG"))
    [request] = tick(instance, store_resource).run_requests
    assert (request.tags[START], request.tags[END]) == ("a-good", "c-good")
    job = dg.Definitions(assets=PIPELINE_ASSETS, jobs=[adgen_pipeline],
                         resources=location_resources(store_resource)).resolve_job_def("adgen_pipeline")
    small = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
             "ops": {"background": {"config": {"width": 128, "height": 128}},
                     "composite": {"config": {"width": 128, "height": 128}},
                     "ad_creatives": {"config": {"sizes": "200x200"}}}}
    result = job.execute_in_process(instance=instance, tags=request.tags, run_config=small, raise_on_error=False)
    assert not result.success
    for pid in ("a-good", "c-good"):  # the batch went on with the good ones
        assert store.exists(f"products/{pid}/product_image.png")
    run = instance.get_run_by_id(result.run_id)
    failure = [e for e in result.all_events if e.is_step_failure][0]
    metadata = {k: getattr(v, "value", v) for k, v in failure.step_failure_data.user_failure_data.metadata.items()}
    split = split_requests(run, [metadata], instance)
    assert [r.partition_key for r in split] == ["a-good", "b-bad", "c-good"]  # then each alone


def test_batch_size_is_the_setting(store, store_resource, instance, monkeypatch):
    monkeypatch.setattr(get_settings(), "batch_size", 4)
    for i in range(6):
        store.put(f"uploads/r{i}.jpg", JPEG)
    assert spans(tick(instance, store_resource)) == [("r0", "r3"), ("r4", "r5")]
