"""`analysis`: tone, palette, free space for text and the text colour, as JSON."""

import dagster as dg

from adgen_dagster.imaging import analyze
from adgen_dagster.imaging.analyze import AnalysisParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.checks import ANALYSIS_SCHEMA, analysis_schema_result, check_spec, per_product_evaluations
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import backend_fields, configured_backend, stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.gpu_resource import GPU, GpuResource
from resources.store_resource import StoreResource

AnalysisConfig = stage_config(
    "AnalysisConfig",
    get_settings().analysis,
    **backend_fields("analyzer", get_settings().analyzer, "Analysis backend."),
)


rule("analysis", AnalysisConfig, AnalysisParams, "analyzer")

@dg.asset(
    partitions_def=products_partitions,
    deps=["retouched", "composite"],
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    pool="gpu",
    resource_defs={"gpu": GPU},
    code_version=analyze.VERSION,
    kinds={"json"},
    check_specs=[check_spec(ANALYSIS_SCHEMA, "analysis", "analysis.json validates against the Analysis schema.")],
    description="Tone, brightness, main colours, mood, product box, the recommended text zone and "
    "text colour with its WCAG contrast (schema: schemas/analysis.schema.json).",
)
def analysis(context: dg.AssetExecutionContext, config: AnalysisConfig, store: StoreResource, gpu: GpuResource):
    with starting(context, "analysis"):
        params = to_params(config, AnalysisParams)
        backend = configured_backend("analyzer", config, gpu)
        compute = stages.analysis(params, backend)
    results = materialize_stage(
        context, store, "analysis", analyze.VERSION, params,
        compute=lambda pid: compute,
        backend=backend,
    )
    yield dg.MaterializeResult(
        metadata=run_metadata({
            pid: stage_metadata(store, pid, r, "analysis.json", analyze.VERSION, config.backend) for pid, r in results.items()
        }),
    )
    yield from per_product_evaluations(context, "analysis", {
        pid: analysis_schema_result(r.metadata["analysis"], pid) for pid, r in results.items()})
