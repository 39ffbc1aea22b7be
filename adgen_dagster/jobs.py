"""The pipeline job: every asset of the `adgen` group for the products selected.

It uses the in-process executor: all steps of a run share one process, so resources
(and, with neural backends, loaded models) are set up once per run rather than once
per step, and a small run is not dominated by starting a Python process per step.
"""

import dagster as dg


adgen_pipeline = dg.define_asset_job(
    name="adgen_pipeline",
    selection=dg.AssetSelection.groups("adgen"),
    executor_def=dg.in_process_executor,
    description="Product photo to finished ads: cut-out, background, composite, retouch, analysis, creatives.",
)
