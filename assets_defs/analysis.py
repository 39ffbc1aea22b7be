"""`analysis`: tone, palette, free space for text and the text colour, as JSON."""


import dagster as dg

from adgen_dagster.backends import get_analyzer
from adgen_dagster.imaging import analyze
from adgen_dagster.imaging.analyze import AnalysisParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.checks import ANALYSIS_SCHEMA, analysis_schema_result, worst
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.products import load_image, save_json
from resources.store_resource import StoreResource

AnalysisConfig = stage_config(
    "AnalysisConfig",
    get_settings().analysis,
    backend=(str, get_settings().analyzer, "Analysis backend: 'classical' (CPU, no weights)."),
)


@dg.asset(
    partitions_def=products_partitions,
    deps=["retouched", "composite"],
    group_name="adgen",
    code_version=analyze.VERSION,
    kinds={"json"},
    check_specs=[dg.AssetCheckSpec(ANALYSIS_SCHEMA, asset="analysis", description="analysis.json validates against the Analysis schema.")],
    description="Tone, brightness, main colours, mood, product box, the recommended text zone and "
    "text colour with its WCAG contrast (schema: schemas/analysis.schema.json).",
)
def analysis(context: dg.AssetExecutionContext, config: AnalysisConfig, store: StoreResource):
    s = store.get_store()
    with failures_named("analysis"):
        params = to_params(config, AnalysisParams)
        analyzer = get_analyzer(config.backend)
    checks: list[dg.AssetCheckResult] = []

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            img = load_image(s, pid, "retouched.png")
            mask = load_image(s, pid, "composite_mask.png")
        with t("analyze"):
            result = analyzer(img, mask, params)
        doc = result.model_dump(mode="json")
        with t("write"):
            out = save_json(s, pid, "analysis.json", doc)
        checks.append(analysis_schema_result(doc, pid))
        return {
            "output": out,
            "backend": config.backend,
            "stage_version": analyze.VERSION,
            "tone": result.tone,
            "mood": ", ".join(result.mood),
            "text_zone": result.text_zone.position,
            "text_colour": result.text_colour,
            "text_contrast": round(result.text_contrast, 2),
            "main_colours": ", ".join(c.hex for c in result.main_colours),
            "timings_ms": t.ms,
            "analysis": dg.MetadataValue.json(doc),
        }

    results = for_each_product(context, "analysis", one)
    return dg.MaterializeResult(metadata=run_metadata(results), check_results=[worst(checks)])
