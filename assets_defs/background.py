"""`background`: a new backdrop for the product, from its details and colours."""

import dagster as dg

from adgen_dagster.imaging import backdrop
from adgen_dagster.imaging.backdrop import BackdropParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import backend_fields, configured_backend, stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.gpu_resource import GPU, GpuResource
from resources.store_resource import StoreResource

BackgroundConfig = stage_config(
    "BackgroundConfig",
    get_settings().backdrop,
    **backend_fields("background", get_settings().background, "Background backend."),
)


rule("background", BackgroundConfig, BackdropParams, "background")

@dg.asset(
    partitions_def=products_partitions,
    deps=["product_image"],
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    pool="gpu",
    resource_defs={"gpu": GPU},
    code_version=backdrop.VERSION,
    kinds={"image"},
    description="A new background (studio sweep or gradient) in colours chosen from the product's "
    "details (palette, style) or, failing those, a tint that sets off the product's own colours.",
)
def background(context: dg.AssetExecutionContext, config: BackgroundConfig, store: StoreResource, gpu: GpuResource) -> dg.MaterializeResult:
    with starting(context, "background"):
        params = to_params(config, BackdropParams)
        backend = configured_backend("background", config, gpu)
        compute = stages.background(params, backend)
    results = materialize_stage(
        context, store, "background", backdrop.VERSION, params,
        compute=lambda pid: compute,
        inputs=lambda pid: {"product_id": pid.encode()},
        backend=backend,
    )
    return dg.MaterializeResult(metadata=run_metadata({
        pid: stage_metadata(store, pid, r, "background.png", backdrop.VERSION, config.backend) for pid, r in results.items()
    }))
