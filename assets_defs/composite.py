"""`composite`: the cut-out placed on the background with a contact shadow."""


import dagster as dg

from adgen_dagster.imaging import composite as composite_core
from adgen_dagster.imaging.composite import CompositeParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import load_image, save_image
from resources.store_resource import StoreResource

CompositeConfig = stage_config("CompositeConfig", get_settings().composite)


@dg.asset(
    partitions_def=products_partitions,
    deps=["nobg_image", "background"],
    group_name="adgen",
    code_version=composite_core.VERSION,
    kinds={"image"},
    description="The product scaled and placed on the background with a soft contact shadow. "
    "Also stores `composite_mask.png`, the product's alpha on the canvas, for retouch and analysis.",
)
def composite(context: dg.AssetExecutionContext, config: CompositeConfig, store: StoreResource) -> dg.MaterializeResult:
    s = store.get_store()
    with failures_named("composite"):
        params = to_params(config, CompositeParams)

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            cut = load_image(s, pid, "nobg_image.png")
            bg = load_image(s, pid, "background.png")
        with t("composite"):
            placed = composite_core.composite(cut, bg, params)
        with t("write"):
            out = save_image(s, pid, "composite.png", placed.image)
            save_image(s, pid, "composite_mask.png", placed.mask)
        return {
            "output": out,
            "stage_version": composite_core.VERSION,
            "width": placed.image.width,
            "height": placed.image.height,
            "placement": params.placement,
            "product_box": dg.MetadataValue.json(list(placed.box)),
            "scale": round(placed.scale, 4),
            "timings_ms": t.ms,
            "preview": dg.MetadataValue.md(preview_markdown(placed.image)),
        }

    return dg.MaterializeResult(metadata=run_metadata(for_each_product(context, "composite", one)))
