"""`background`: a new backdrop for the product, from its details and colours."""


import dagster as dg

from adgen_dagster.backends import get_background
from adgen_dagster.imaging import backdrop
from adgen_dagster.imaging.backdrop import BackdropParams
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.imaging.palette import product_colours
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import load_image, load_json, save_image
from resources.store_resource import StoreResource

BackgroundConfig = stage_config(
    "BackgroundConfig",
    get_settings().backdrop,
    backend=(str, get_settings().background, "Background backend: 'studio' (CPU, no weights)."),
)


@dg.asset(
    partitions_def=products_partitions,
    deps=["product_image"],
    group_name="adgen",
    code_version=backdrop.VERSION,
    kinds={"image"},
    description="A new background (studio sweep or gradient) in colours chosen from the product's "
    "details (palette, style) or, failing those, a tint that sets off the product's own colours.",
)
def background(context: dg.AssetExecutionContext, config: BackgroundConfig, store: StoreResource) -> dg.MaterializeResult:
    s = store.get_store()
    with failures_named("background"):
        params = to_params(config, BackdropParams)
        render = get_background(config.backend)

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            details = ProductDetails.model_validate(load_json(s, pid, "details.json"))
            photo = load_image(s, pid, "product_image.png")
        with t("palette"):
            colours = product_colours(photo)
        seed = details.seed_for(pid)
        with t("render"):
            img = render(details, colours, params, seed=seed)
        with t("write"):
            out = save_image(s, pid, "background.png", img)
        return {
            "output": out,
            "backend": config.backend,
            "stage_version": backdrop.VERSION,
            "width": img.width,
            "height": img.height,
            "seed": seed,
            "product_colours": ", ".join(colours),
            "style": details.style or "(none)",
            "timings_ms": t.ms,
            "preview": dg.MetadataValue.md(preview_markdown(img)),
        }

    return dg.MaterializeResult(metadata=run_metadata(for_each_product(context, "background", one)))
