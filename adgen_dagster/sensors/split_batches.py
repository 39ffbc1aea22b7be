"""The `split_failed_batches` sensor: a batch in which some products failed is re-run one product per run.

A batched run (a tick's uploads, a backfill, the nightly refresh) goes on past a bad
product and fails at the end with `failed_products` in its failure metadata; this sensor
then asks for one run per product of the batch, so the good ones finish from the cache
and each bad one fails alone, on its own partition, with its own message.
"""

from __future__ import annotations

from typing import Iterable

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.sensors.base import sensor_settings, default_status

SPLIT_TAG = "adgen/split_from"


def split_requests(run: dg.DagsterRun, failure_metadata: Iterable[dict], instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One run per product of a failed batch in which some products failed (see `batch_failure`).

    Only batches that failed product by product are split (a store outage fails the step at
    once, without `failed_products`), and never a run that was itself split from one.
    """
    tags = run.tags
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if not start or not end or SPLIT_TAG in tags:
        return []
    if not any("failed_products" in md for md in failure_metadata):
        return []
    keys = instance.get_dynamic_partitions(products_partitions.name)
    if start not in keys or end not in keys:
        return []
    pids = keys[keys.index(start):keys.index(end) + 1]
    return [dg.RunRequest(run_key=f"split:{run.run_id}:{pid}", partition_key=pid, tags={SPLIT_TAG: run.run_id})
            for pid in pids]


def _failure_metadata(context: dg.RunFailureSensorContext) -> list[dict]:
    out = []
    for event in context.get_step_failure_events():
        data = getattr(event.event_specific_data, "user_failure_data", None)
        out.append({k: getattr(v, "value", v) for k, v in (getattr(data, "metadata", None) or {}).items()})
    return out


def _split_sensor():
    from adgen_dagster.jobs import adgen_pipeline

    @dg.run_failure_sensor(
        name="split_failed_batches",
        request_job=adgen_pipeline,
        default_status=default_status(),
        minimum_interval_seconds=sensor_settings().interval_seconds,
        description="A batched run (backfill, nightly refresh) in which some products failed is re-run one product per "
        "run: the good ones finish from the cache, each bad one fails alone with its own message.",
    )
    def split_failed_batches(context: dg.RunFailureSensorContext):
        requests = split_requests(context.dagster_run, _failure_metadata(context), context.instance)
        if requests:
            context.log.info(f"run {context.dagster_run.run_id}: {len(requests)} product(s) re-run one per run")
        return requests

    return split_failed_batches


split_failed_batches = _split_sensor()
