"""`retouched`: edge blending, colour harmonisation, sharpening, brightness and contrast."""

import dagster as dg

from adgen_dagster.imaging import retouch as retouch_core
from adgen_dagster.imaging.retouch import RetouchParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.store_resource import StoreResource

RetouchConfig = stage_config("RetouchConfig", get_settings().retouch)


rule("retouched", RetouchConfig, RetouchParams)

@dg.asset(
    partitions_def=products_partitions,
    deps=["composite", "background"],
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    code_version=retouch_core.VERSION,
    kinds={"image"},
    description="The composite retouched: edges blended on the boundary band only, the product's colour "
    "adapted to the background's light, sharpened, brightness x1.05 and contrast x1.1 by default.",
)
def retouched(context: dg.AssetExecutionContext, config: RetouchConfig, store: StoreResource) -> dg.MaterializeResult:
    with starting(context, "retouched"):
        params = to_params(config, RetouchParams)
        compute = stages.retouch_stage(params)
    results = materialize_stage(
        context, store, "retouched", retouch_core.VERSION, params,
        compute=lambda pid: compute,
    )
    return dg.MaterializeResult(metadata=run_metadata({
        pid: stage_metadata(store, pid, r, "retouched.png", retouch_core.VERSION) for pid, r in results.items()
    }))
