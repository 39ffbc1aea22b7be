"""`ad_creatives`: the headline rendered where the analysis says, per marketplace size."""

import dagster as dg

from adgen_dagster.imaging import ads
from adgen_dagster.imaging.ads import AdParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.checks import AD_CONTRAST, ad_contrast_result, check_spec, per_product_evaluations
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.store_resource import StoreResource

AdConfig = stage_config("AdConfig", get_settings().ads)


rule("ad_creatives", AdConfig, AdParams)

@dg.asset(
    partitions_def=products_partitions,
    deps=["retouched", "analysis"],
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    code_version=ads.VERSION,
    kinds={"image", "html"},
    check_specs=[check_spec(AD_CONTRAST, "ad_creatives", "Ad text contrast is at least 4.5:1 (WCAG AA).")],
    description="Finished ads: headline, subline and price in the recommended zone and colour, "
    "as PNG and HTML under products/<pid>/ads/ in 1080x1080, 1080x1350, 1080x1920 and 1200x628.",
)
def ad_creatives(context: dg.AssetExecutionContext, config: AdConfig, store: StoreResource):
    with starting(context, "ad_creatives"):
        params = to_params(config, AdParams)
        compute = stages.ad_creatives(params)
    results = materialize_stage(
        context, store, "ad_creatives", ads.VERSION, params,
        compute=lambda pid: compute,
    )
    per_product = {}
    for pid, r in results.items():
        first = f"ads/{r.metadata['sizes'].split(', ')[0]}.png"
        per_product[pid] = stage_metadata(store, pid, r, first, ads.VERSION)
        per_product[pid]["output"] = per_product[pid]["output"].rsplit("/", 1)[0] + "/"
    yield dg.MaterializeResult(metadata=run_metadata(per_product))
    yield from per_product_evaluations(context, "ad_creatives", {
        pid: ad_contrast_result(r.metadata["contrast"], pid) for pid, r in results.items()})
