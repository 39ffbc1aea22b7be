"""The code location: what `dg dev` (via workspace.yaml) and the tests load.

`defs` is built when Dagster loads the location (`@dg.definitions`), not when this module
is imported: the settings in force then give the assets' run-config defaults and batch
sizes, and the resources, which are bound here and only here (`location_resources`).

The executor is set here, for every job of the location: `adgen_pipeline`, and the implicit
asset job that the UI's Materialize button, Catalog backfills and asset sensors launch. Each
run is then one process (resources and models set up once, no process start per step, and
it works inside a daemonic worker such as a Celery task, where a multiprocess executor
cannot start children).
"""

from __future__ import annotations

from typing import Optional

import dagster as dg

from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.schedules import build_nightly_schedule
from adgen_dagster.sensors import SENSORS
from adgen_dagster.settings import AdgenSettings, get_settings
from assets_defs import pipeline_assets
from resources.gpu_resource import GpuResource
from resources.store_resource import StoreResource, s3_resource_from_env


def location_resources(store: Optional[StoreResource] = None, settings: Optional[AdgenSettings] = None) -> dict:
    """The resources every asset may use: the store (default: as the settings say) and the GPU's model host."""
    s = settings or get_settings()
    if store is None:
        store = StoreResource(s3=s3_resource_from_env()) if s.store.kind == "s3" else StoreResource()
    return {"store": store, "gpu": GpuResource()}


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    return dg.Definitions(
        assets=pipeline_assets(settings),
        jobs=[adgen_pipeline],
        schedules=[build_nightly_schedule(settings)],
        sensors=SENSORS,
        resources=location_resources(settings=settings),
        # Backfills run as the implicit asset job: in-process too, so a run's steps share one
        # process (and its loaded models), and a run can execute inside a Celery worker, whose
        # pool process may not start children (the multiprocess executor's step processes).
        executor=dg.in_process_executor,
    )
