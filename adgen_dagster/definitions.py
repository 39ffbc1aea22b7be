"""The code location: what `dagster dev` (via workspace.yaml) and the tests load."""

import dagster as dg

from adgen_dagster.jobs import adgen_pipeline
from assets_defs import PIPELINE_ASSETS
from resources.store_resource import StoreResource

defs = dg.Definitions(
    assets=PIPELINE_ASSETS,
    jobs=[adgen_pipeline],
    resources={"store": StoreResource()},
)
