"""`ad_creatives`: the headline rendered where the analysis says, per marketplace size."""


import dagster as dg

from adgen_dagster.imaging import ads
from adgen_dagster.imaging.ads import AdParams, render_ads
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.checks import AD_CONTRAST, ad_contrast_result, worst
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import load_image, load_json, product_key, save_image
from resources.store_resource import StoreResource

AdConfig = stage_config("AdConfig", get_settings().ads)


@dg.asset(
    partitions_def=products_partitions,
    deps=["retouched", "analysis"],
    group_name="adgen",
    code_version=ads.VERSION,
    kinds={"image", "html"},
    check_specs=[dg.AssetCheckSpec(AD_CONTRAST, asset="ad_creatives", description="Ad text contrast is at least 4.5:1 (WCAG AA).")],
    description="Finished ads: headline, subline and price in the recommended zone and colour, "
    "as PNG and HTML under products/<pid>/ads/ in 1080x1080, 1080x1350, 1080x1920 and 1200x628.",
)
def ad_creatives(context: dg.AssetExecutionContext, config: AdConfig, store: StoreResource):
    s = store.get_store()
    with failures_named("ad_creatives"):
        params = to_params(config, AdParams)
    checks: list[dg.AssetCheckResult] = []

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            img = load_image(s, pid, "retouched.png")
            result = Analysis.model_validate(load_json(s, pid, "analysis.json"))
            details = ProductDetails.model_validate(load_json(s, pid, "details.json"))
        with t("render"):
            creatives = render_ads(img, result, details, params)
        with t("write"):
            written = []
            for c in creatives:
                written.append(save_image(s, pid, f"ads/{c.size_name}.png", c.png))
                s.put(product_key(pid, f"ads/{c.size_name}.html"), c.html.encode("utf-8"), "text/html; charset=utf-8")
        checks.append(ad_contrast_result({c.size_name: c.contrast for c in creatives}, pid))
        square = next((c for c in creatives if c.png.width == c.png.height), creatives[0])
        return {
            "output": written[0].rsplit("/", 1)[0] + "/",
            "stage_version": ads.VERSION,
            "sizes": ", ".join(c.size_name for c in creatives),
            "headline": details.display_headline,
            "contrast": dg.MetadataValue.json({c.size_name: round(c.contrast, 2) for c in creatives}),
            "timings_ms": t.ms,
            "preview": dg.MetadataValue.md(preview_markdown(square.png, 256)),
        }

    results = for_each_product(context, "ad_creatives", one)
    return dg.MaterializeResult(metadata=run_metadata(results), check_results=[worst(checks)])
