"""`retouched`: edge blending, colour harmonisation, sharpening, brightness and contrast."""


import dagster as dg

from adgen_dagster.imaging import retouch as retouch_core
from adgen_dagster.imaging.retouch import RetouchParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import load_image, save_image
from resources.store_resource import StoreResource

RetouchConfig = stage_config("RetouchConfig", get_settings().retouch)


@dg.asset(
    partitions_def=products_partitions,
    deps=["composite", "background"],
    group_name="adgen",
    code_version=retouch_core.VERSION,
    kinds={"image"},
    description="The composite retouched: edges blended on the boundary band only, the product's colour "
    "adapted to the background's light, sharpened, brightness x1.05 and contrast x1.1 by default.",
)
def retouched(context: dg.AssetExecutionContext, config: RetouchConfig, store: StoreResource) -> dg.MaterializeResult:
    s = store.get_store()
    with failures_named("retouched"):
        params = to_params(config, RetouchParams)

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            comp = load_image(s, pid, "composite.png")
            mask = load_image(s, pid, "composite_mask.png")
            bg = load_image(s, pid, "background.png")
        with t("retouch"):
            img = retouch_core.retouch(comp, mask, bg, params)
        with t("write"):
            out = save_image(s, pid, "retouched.png", img)
        return {
            "output": out,
            "stage_version": retouch_core.VERSION,
            "width": img.width,
            "height": img.height,
            "brightness": params.brightness,
            "contrast": params.contrast,
            "timings_ms": t.ms,
            "preview": dg.MetadataValue.md(preview_markdown(img)),
        }

    return dg.MaterializeResult(metadata=run_metadata(for_each_product(context, "retouched", one)))
