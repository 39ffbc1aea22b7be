"""`product_image`: the upload decoded safely and normalised, plus its details."""

import dagster as dg

from adgen_dagster.imaging import decode
from adgen_dagster.imaging.decode import DecodeParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.products import upload_for
from resources.store_resource import StoreResource

DecodeConfig = stage_config("DecodeConfig", get_settings().decode)


rule("product_image", DecodeConfig, DecodeParams)

@dg.asset(
    partitions_def=products_partitions,
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    code_version=decode.VERSION,
    kinds={"python", "image"},
    description="The upload decoded safely (EXIF orientation, 8-bit RGB/RGBA, bounded size) as PNG, "
    "and the product details from its sidecar JSON (details.json). The upload itself is never changed.",
)
def product_image(context: dg.AssetExecutionContext, config: DecodeConfig, store: StoreResource) -> dg.MaterializeResult:
    with starting(context, "product_image"):
        params = to_params(config, DecodeParams)
    s = store.get_store()
    uploads = {}

    def inputs(pid: str) -> stages.Files:
        uploads[pid] = rec = upload_for(s, pid)
        return stages.product_inputs(s, rec.upload_key, params.max_bytes)

    results = materialize_stage(
        context, store, "product_image", decode.VERSION, params,
        compute=lambda pid: stages.product_image(params, uploads[pid].file_name),
        inputs=inputs,
    )
    return dg.MaterializeResult(metadata=run_metadata({
        pid: {**stage_metadata(store, pid, r, "product_image.png", decode.VERSION), "upload": uploads[pid].upload_key}
        for pid, r in results.items()
    }))
