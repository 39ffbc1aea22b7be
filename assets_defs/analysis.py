"""`analysis`: tone, palette, free space for text and the text colour, as JSON."""

from assets_defs.checks import ANALYSIS_SCHEMA, analysis_schema_result
from assets_defs.factory import AssetPlan, Check

PLAN = AssetPlan(
    "analysis",
    kinds={"json"},
    backend_help="Analysis backend.",
    checks=[Check(ANALYSIS_SCHEMA, "analysis", "analysis.json validates against the Analysis schema.",
                  lambda md, pid: analysis_schema_result(md["analysis"], pid))],
    description="Tone, brightness, main colours, mood, product box, the recommended text zone and "
    "text colour with its WCAG contrast (schema: schemas/analysis.schema.json).",
)
