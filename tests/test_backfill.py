"""Backfills are batched: a backfill over N products asks for ceil(N / batch size) runs.

The backfill is created the way the UI creates it (a `PartitionBackfill` over the
`adgen` assets) and the daemon's own iteration (`execute_backfill_iteration`) turns it
into runs, against the code location loaded in-process. The instance uses the queued
run coordinator and no daemon dequeues, so the runs are only planned and counted here;
tests/test_e2e_dagster_dev.py executes a batched backfill for real.
"""

import logging
import shutil
import time

import dagster as dg
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._core.utils import make_new_backfill_id

from adgen_dagster.definitions import defs as load_defs
from adgen_dagster.settings import get_settings
from tests.conftest import REPO

defs = load_defs()  # the code location as Dagster loads it

ASSETS = ["product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"]


def test_every_asset_has_the_batched_backfill_policy():
    n = get_settings().batch_size
    assert n == 10
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).backfill_policy == dg.BackfillPolicy.multi_run(n), key


def test_model_stages_share_the_gpu_pool():
    graph = defs.resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys()}
    assert {k for k, p in pools.items() if p == {"gpu"}} == {"nobg_image", "mask", "background", "analysis"}
    assert all(p == {"gpu"} or not p for p in pools.values())


def test_shipped_dagster_yaml_loads_with_gpu_pool_limit_and_run_monitoring(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert not instance.telemetry_enabled


def _run_backfill_planning(instance, pids, backfill_id):
    graph = defs.resolve_asset_graph()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=graph,
        partition_names=pids,
        asset_selection=[dg.AssetKey(a) for a in ASSETS],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="adgen_dagster.definitions", working_directory=str(REPO)),
        location_name="adgen_dagster.definitions",
    )
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as ctx:
        list(execute_backfill_iteration(ctx, logging.getLogger("test_backfill")))
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))


def test_backfill_of_25_products_with_batch_size_10_is_3_runs():
    with dg.instance_for_test(overrides={
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
    }) as instance:
        pids = [f"prod-{i:02d}" for i in range(25)]
        instance.add_dynamic_partitions("products", pids)
        runs = _run_backfill_planning(instance, pids, make_new_backfill_id())
        assert len(runs) == 3
        ranges = sorted((r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in runs)
        assert ranges == [("prod-00", "prod-09"), ("prod-10", "prod-19"), ("prod-20", "prod-24")]
        for r in runs:
            assert {k.to_user_string() for k in r.asset_selection} == set(ASSETS)
            assert r.status == dg.DagsterRunStatus.QUEUED


def test_non_contiguous_selection_is_one_run_per_contiguous_stretch():
    """A selection with gaps (e.g. products 0-3, 5 and 7-8) cannot be one range: each
    unbroken stretch of the partition order becomes its own run(s)."""
    with dg.instance_for_test(overrides={
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
    }) as instance:
        pids = [f"prod-{i:02d}" for i in range(10)]
        instance.add_dynamic_partitions("products", pids)
        chosen = [pids[i] for i in (0, 1, 2, 3, 5, 7, 8)]
        runs = _run_backfill_planning(instance, chosen, make_new_backfill_id())
        ranges = sorted((r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in runs)
        assert ranges == [("prod-00", "prod-03"), ("prod-05", "prod-05"), ("prod-07", "prod-08")]
