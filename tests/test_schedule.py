"""The nightly schedule asks for runs of exactly the products that are missing or stale."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from adgen_dagster.definitions import defs as load_defs
from adgen_dagster.schedules import build_nightly_schedule, nightly_refresh
from adgen_dagster.settings import AdgenSettings
from adgen_dagster.staleness import RANGE_END_TAG, RANGE_START_TAG, contiguous_batches, stale_products
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from tests.imagegen import encode, product_photo

defs = load_defs()  # the code location as Dagster loads it

TICK = datetime(2026, 1, 15, 2, 0, tzinfo=ZoneInfo("UTC"))
BRIGHTER = {"ops": {"retouched": {"config": {"brightness": 1.2}}}}


def tiny(seed: int) -> bytes:
    return encode(product_photo(size=(96, 96), seed=seed), "JPEG", quality=90)


def materialize(pid, store_resource, instance, run_config=None):
    result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(store_resource),
                            instance=instance, run_config=run_config or {})
    assert result.success


def tick(instance):
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK, repository_def=defs.get_repository_def())
    return nightly_refresh.evaluate_tick(ctx)


def requested_partitions(request: dg.RunRequest) -> list[str]:
    if request.partition_key:
        return [request.partition_key]
    return [request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]]


def test_schedule_requests_only_stale_and_missing_products(store_resource, instance, add_product):
    stale = add_product("stale.jpg", tiny(1))
    fresh = add_product("fresh.jpg", tiny(2))
    missing = add_product("missing.jpg", tiny(3))  # registered, never materialized
    materialize(fresh, store_resource, instance)
    materialize(stale, store_resource, instance, BRIGHTER)  # retouched (only) made with other settings

    assert stale_products(instance, [stale, fresh, missing]) == {
        stale: "retouched stale",
        missing: ", ".join(f"{a} missing" for a in
                           ("product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives")),
    }
    data = tick(instance)
    assert data.skip_message is None
    requests = data.run_requests
    # not neighbours in the partition order (fresh sits between them): one run each
    assert [r.partition_key for r in requests] == [stale, missing]
    assert [r.run_key for r in requests] == [f"nightly:2026-01-15:{stale}", f"nightly:2026-01-15:{missing}"]
    assert all(r.tags["dagster/partition"] == r.partition_key for r in requests)
    assert "retouched stale" in requests[0].tags["adgen/nightly_reason"]


def test_neighbouring_stale_products_share_a_ranged_run_and_then_the_schedule_skips(store_resource, instance, add_product):
    fresh = add_product("fresh.jpg", tiny(2))
    stale = add_product("stale.jpg", tiny(1))
    missing = add_product("missing.jpg", tiny(3))
    materialize(fresh, store_resource, instance)
    materialize(stale, store_resource, instance, BRIGHTER)

    [request] = tick(instance).run_requests
    assert request.partition_key is None
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (stale, missing)
    assert request.run_key == f"nightly:2026-01-15:{stale}..{missing}"

    # run it as the daemon would (same job, same tags) and the catalog is up to date
    job = defs.resolve_job_def("adgen_pipeline")
    result = job.execute_in_process(instance=instance, tags=request.tags, resources=location_resources(store_resource))
    assert result.success
    assert {e.partition for e in result.get_asset_materialization_events()} == {stale, missing}
    data = tick(instance)
    assert data.run_requests == [] and data.skip_message == "all 3 products are up to date"


def test_contiguous_batches_cut_at_gaps_and_at_batch_size():
    order = [f"p{i}" for i in range(12)]
    chosen = {"p0", "p1", "p2", "p3", "p4", "p6", "p8", "p9", "p10", "p11"}
    assert list(contiguous_batches(order, chosen, 3)) == [["p0", "p1", "p2"], ["p3", "p4"], ["p6"], ["p8", "p9", "p10"], ["p11"]]
    assert list(contiguous_batches(order, set(), 3)) == []


def test_schedule_is_stopped_by_default_and_configurable(monkeypatch):
    assert nightly_refresh.cron_schedule == "0 2 * * *"
    assert nightly_refresh.execution_timezone == "UTC"
    assert nightly_refresh.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_schedule_def("nightly_refresh").job_name == "adgen_pipeline"

    monkeypatch.setenv("ADGEN_SCHEDULE__ENABLED", "true")
    monkeypatch.setenv("ADGEN_SCHEDULE__TIMEZONE", "Asia/Seoul")
    monkeypatch.setenv("ADGEN_BATCH_SIZE", "4")
    s = AdgenSettings()
    assert (s.schedule.enabled, s.schedule.timezone, s.batch_size) == (True, "Asia/Seoul", 4)
    sched = build_nightly_schedule(s)
    assert sched.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sched.execution_timezone == "Asia/Seoul"


@pytest.mark.parametrize("bad", ["0"])
def test_batch_size_must_be_positive(monkeypatch, bad):
    monkeypatch.setenv("ADGEN_BATCH_SIZE", bad)
    with pytest.raises(ValueError):
        AdgenSettings()
