"""A batched run in which one product is bad: the others are done, then the batch is split per product."""

import dagster as dg

from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.sensors import SPLIT_TAG, split_failed_batches
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from tests.imagegen import encode, product_photo

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def test_one_bad_product_in_a_batch_fails_alone_after_the_split(store, store_resource, instance, add_product):
    a = add_product("a-mug.jpg")
    bad = add_product("b-broken.jpg", data=b"this is not a jpeg at all")
    c = add_product("c-lamp.jpg", data=encode(product_photo(colour=(40, 80, 200), seed=2), "JPEG"))
    result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance, run_config=QUIET,
                            tags={"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": c},
                            raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    msg = failure.step_failure_data.error.message
    assert "product_image: 1 of 3 products in this batch failed" in msg and f"'{bad}'" in msg and "b-broken.jpg" in msg
    assert "The other 2 are done and cached" in msg
    for pid in (a, c):  # the good products' first stage was done, not lost
        assert store.get_or_none(f"products/{pid}/product_image.png") is not None

    # The failure sensor splits the batch into one run per product ...
    run = instance.get_run_by_id(result.run_id)
    step_failure = next(e for e in instance.all_logs(result.run_id) if e.dagster_event and e.dagster_event.is_step_failure)
    ctx = dg.build_run_status_sensor_context(sensor_name="split_failed_batches", dagster_instance=instance,
                                             dagster_run=run, dagster_event=step_failure.dagster_event).for_run_failure()
    requests = split_failed_batches(ctx)
    assert [r.partition_key for r in requests] == [a, bad, c]
    assert all(r.tags[SPLIT_TAG] == result.run_id for r in requests)

    # ... in which each good product finishes (its first stage from the cache) and the bad one fails alone.
    job = dg.Definitions(assets=PIPELINE_ASSETS, jobs=[adgen_pipeline],
                         resources=location_resources(store_resource)).resolve_job_def("adgen_pipeline")
    outcomes = {r.partition_key: job.execute_in_process(instance=instance, partition_key=r.partition_key, tags=r.tags,
                                                        run_config=QUIET,
                                                        raise_on_error=False) for r in requests}
    assert outcomes[a].success and outcomes[c].success and not outcomes[bad].success
    for pid in (a, c):
        assert store.get_or_none(f"products/{pid}/ads/1080x1080.png") is not None
        mats = outcomes[pid].get_asset_materialization_events()
        cache = {e.asset_key.path[-1]: e.materialization.metadata["cache"].value for e in mats}
        assert cache["product_image"] == "hit" and cache["ad_creatives"] == "miss"
    [bad_failure] = [e for e in outcomes[bad].all_events if e.is_step_failure]
    assert f"product_image failed for product '{bad}': b-broken.jpg: not an image" in bad_failure.step_failure_data.error.message

    # A split run that fails is never split again.
    split_run = instance.get_run_by_id(outcomes[bad].run_id)
    assert SPLIT_TAG in split_run.tags
    from adgen_dagster.sensors import split_requests

    assert split_requests(split_run, [{"failed_products": bad}], instance) == []
