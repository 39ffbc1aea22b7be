"""`composite`: the cut-out placed on the background with a contact shadow."""

import dagster as dg

from adgen_dagster.imaging import composite as composite_core
from adgen_dagster.imaging.composite import CompositeParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.store_resource import StoreResource

CompositeConfig = stage_config("CompositeConfig", get_settings().composite)


rule("composite", CompositeConfig, CompositeParams)

@dg.asset(
    partitions_def=products_partitions,
    deps=["nobg_image", "background"],
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    code_version=composite_core.VERSION,
    kinds={"image"},
    description="The product scaled and placed on the background with a soft contact shadow. "
    "Also stores `composite_mask.png`, the product's alpha on the canvas, for retouch and analysis.",
)
def composite(context: dg.AssetExecutionContext, config: CompositeConfig, store: StoreResource) -> dg.MaterializeResult:
    with starting(context, "composite"):
        params = to_params(config, CompositeParams)
        compute = stages.composite_stage(params)
    results = materialize_stage(
        context, store, "composite", composite_core.VERSION, params,
        compute=lambda pid: compute,
    )
    return dg.MaterializeResult(metadata=run_metadata({
        pid: stage_metadata(store, pid, r, "composite.png", composite_core.VERSION) for pid, r in results.items()
    }))
