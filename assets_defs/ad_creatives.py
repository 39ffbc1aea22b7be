"""`ad_creatives`: the headline rendered where the analysis says, per marketplace size."""

from adgen_dagster.stage_runner import StageResult
from adgen_dagster.stages import Stage
from assets_defs.checks import AD_CONTRAST, ad_contrast_result
from assets_defs.common import stage_metadata
from assets_defs.factory import AssetPlan, Check
from resources.store_resource import StoreResource


def metadata(store: StoreResource, pid: str, r: StageResult, stage: Stage, backend: str) -> dict[str, dict]:
    """The output is the product's ads/ folder (its first size locates it)."""
    md = stage_metadata(store, pid, r, f"ads/{r.metadata['sizes'].split(', ')[0]}.png", stage.version)
    md["output"] = md["output"].rsplit("/", 1)[0] + "/"
    return {"ad_creatives": md}


PLAN = AssetPlan(
    "ad_creatives",
    kinds={"image", "html"},
    checks=[Check(AD_CONTRAST, "ad_creatives", "Ad text contrast is at least 4.5:1 (WCAG AA).",
                  lambda md, pid: ad_contrast_result(md["contrast"], pid))],
    metadata=metadata,
    description="Finished ads: headline, subline and price in the recommended zone and colour, "
    "as PNG and HTML under products/<pid>/ads/ in 1080x1080, 1080x1350, 1080x1920 and 1200x628.",
)
