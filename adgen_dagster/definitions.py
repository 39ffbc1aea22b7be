"""The code location: what `dg dev` (via workspace.yaml) and the tests load.

The executor is set here, for every job of the location: `adgen_pipeline`, and the implicit
asset job that the UI's Materialize button, Catalog backfills and asset sensors launch. Each
run is then one process (resources and models set up once, no process start per step, and
it works inside a daemonic worker such as a Celery task, where a multiprocess executor
cannot start children).
"""

import dagster as dg

from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.schedules import nightly_refresh
from adgen_dagster.sensors import SENSORS
from assets_defs import PIPELINE_ASSETS
from adgen_dagster.settings import get_settings
from resources.store_resource import StoreResource, s3_resource_from_env

store = StoreResource(s3=s3_resource_from_env()) if get_settings().store.kind == "s3" else StoreResource()

defs = dg.Definitions(
    assets=PIPELINE_ASSETS,
    jobs=[adgen_pipeline],
    schedules=[nightly_refresh],
    sensors=SENSORS,
    resources={"store": store},
    # Backfills run as the implicit asset job: in-process too, so a run's steps share one
    # process (and its loaded models), and a run can execute inside a Celery worker, whose
    # pool process may not start children (the multiprocess executor's step processes).
    executor=dg.in_process_executor,
)
