"""`product_image`: the upload decoded safely and normalised, plus its details."""


import dagster as dg

from adgen_dagster.imaging import decode
from adgen_dagster.imaging.decode import DecodeParams, decode_upload
from adgen_dagster.imaging.details import parse_details
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import save_image, save_json, upload_for
from resources.store_resource import StoreResource

DecodeConfig = stage_config("DecodeConfig", get_settings().decode)


@dg.asset(
    partitions_def=products_partitions,
    group_name="adgen",
    code_version=decode.VERSION,
    kinds={"python", "image"},
    description="The upload decoded safely (EXIF orientation, 8-bit RGB/RGBA, bounded size) as PNG, "
    "and the product details from its sidecar JSON. The upload itself is never changed.",
)
def product_image(context: dg.AssetExecutionContext, config: DecodeConfig, store: StoreResource) -> dg.MaterializeResult:
    s = store.get_store()
    with failures_named("product_image"):
        params = to_params(config, DecodeParams)

    def one(pid: str) -> dict:
        t = Timer()
        rec = upload_for(s, pid)
        with t("read"):
            data = s.get(rec.upload_key)
            sidecar = s.get_or_none(rec.sidecar_key)
        with t("decode"):
            img = decode_upload(data, rec.file_name, params)
            details = parse_details(sidecar, source=rec.file_name + ".json")
        with t("write"):
            out = save_image(s, pid, "product_image.png", img)
            save_json(s, pid, "details.json", details.model_dump(mode="json"))
        context.log.info(f"{pid}: decoded {rec.upload_key} ({len(data)} bytes) to {img.width}x{img.height} {img.mode}")
        return {
            "upload": rec.upload_key,
            "output": out,
            "width": img.width,
            "height": img.height,
            "mode": img.mode,
            "upload_bytes": len(data),
            "sidecar": dg.MetadataValue.text("yes" if sidecar is not None else "no (defaults)"),
            "headline": details.display_headline,
            "timings_ms": t.ms,
            "preview": dg.MetadataValue.md(preview_markdown(img)),
        }

    return dg.MaterializeResult(metadata=run_metadata(for_each_product(context, "product_image", one)))
