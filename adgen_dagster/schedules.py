"""The nightly schedule: re-run only the products whose outputs are missing or stale.

At 02:00 (`ADGEN_SCHEDULE__CRON`, in `ADGEN_SCHEDULE__TIMEZONE`, UTC by default) it
compares, for every product and asset, the settings key of the latest materialization
with the one the current code and settings give (`adgen_dagster.staleness`), and asks
for runs of the pipeline for the products that differ or were never materialized.

Batching: products that are next to each other in the partitions' order (the order they
were registered in) share a run over their partition range, up to `ADGEN_BATCH_SIZE`
(10) per run, exactly as a backfill batches them; an isolated stale product gets a run
of its own. Up-to-date steps inside such a run are cache hits and cost no model time.

The schedule is STOPPED unless `ADGEN_SCHEDULE__ENABLED=true`: a fresh laptop install
must not start re-processing a catalog at night by itself; on a server the operator
turns it on (setting, or the toggle in the UI).
"""

from __future__ import annotations

import dagster as dg

from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import AdgenSettings, get_settings
from adgen_dagster.staleness import contiguous_batches, run_tags_for_batch, stale_products


def nightly_run_requests(
    context: dg.ScheduleEvaluationContext, settings: AdgenSettings | None = None,
) -> list[dg.RunRequest] | dg.SkipReason:
    settings = settings or get_settings()
    pids = list(context.instance.get_dynamic_partitions(products_partitions.name))
    stale = stale_products(context.instance, pids, settings)
    if not stale:
        return dg.SkipReason(f"all {len(pids)} products are up to date")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d") if context.scheduled_execution_time else "now"
    requests = []
    for batch in contiguous_batches(pids, stale, settings.batch_size):
        why = {"adgen/nightly_reason": "; ".join(f"{p}: {stale[p]}" for p in batch)[:1000]}
        if len(batch) == 1:
            requests.append(dg.RunRequest(run_key=f"nightly:{day}:{batch[0]}", partition_key=batch[0], tags=why))
        else:
            requests.append(dg.RunRequest(
                run_key=f"nightly:{day}:{batch[0]}..{batch[-1]}", tags={**why, **run_tags_for_batch(batch)},
            ))
    context.log.info(f"{len(stale)} of {len(pids)} products need a run: {len(requests)} run(s)")
    return requests


def build_nightly_schedule(settings: AdgenSettings | None = None) -> dg.ScheduleDefinition:
    s = settings or get_settings()

    @dg.schedule(
        name="nightly_refresh",
        job=adgen_pipeline,
        cron_schedule=s.schedule.cron,
        execution_timezone=s.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if s.schedule.enabled else dg.DefaultScheduleStatus.STOPPED,
        description="Nightly: re-run the pipeline for products whose outputs are missing or were made with "
        "other code or settings, batched like backfills. Stopped unless ADGEN_SCHEDULE__ENABLED=true.",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext):
        return nightly_run_requests(context, s)

    return nightly_refresh


def __getattr__(name: str):
    """`nightly_refresh`, built for the settings in force when first asked for (not at import)."""
    if name == "nightly_refresh":
        return build_nightly_schedule()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
