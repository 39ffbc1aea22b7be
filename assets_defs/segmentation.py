"""`nobg_image` + `mask`: one segmentation step, two assets."""


import dagster as dg

from adgen_dagster.backends import get_segmenter
from adgen_dagster.imaging import segment
from adgen_dagster.imaging.segment import SegmentParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from assets_defs.checks import MASK_COVERAGE, mask_coverage_result, worst
from assets_defs.common import Timer, failures_named, for_each_product, run_metadata
from assets_defs.config import stage_config, to_params
from resources.io import preview_markdown
from resources.products import load_image, save_image
from resources.store_resource import StoreResource

SegmentConfig = stage_config(
    "SegmentConfig",
    get_settings().segment,
    backend=(str, get_settings().segmenter, "Cut-out backend: 'classical' (CPU, no weights)."),
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("nobg_image", deps=["product_image"], kinds={"image"},
                     description="The product cut out: RGBA, foreground colours re-estimated so no fringe of the old background remains."),
        dg.AssetSpec("mask", deps=["product_image"], kinds={"image"}, description="The product's soft alpha mask (0-255)."),
    ],
    check_specs=[dg.AssetCheckSpec(MASK_COVERAGE, asset="mask", description="Mask covers between 0.5% and 99% of the image.")],
    partitions_def=products_partitions,
    group_name="adgen",
    name="segmentation",
    can_subset=False,
)
def segmentation(context: dg.AssetExecutionContext, config: SegmentConfig, store: StoreResource):
    s = store.get_store()
    with failures_named("segmentation"):
        params = to_params(config, SegmentParams)
        segmenter = get_segmenter(config.backend)
    checks: list[dg.AssetCheckResult] = []

    def one(pid: str) -> dict:
        t = Timer()
        with t("read"):
            img = load_image(s, pid, "product_image.png")
        with t("segment"):
            cut = segmenter(img, params)
        with t("write"):
            nobg = save_image(s, pid, "nobg_image.png", cut.rgba)
            mask = save_image(s, pid, "mask.png", cut.mask)
        checks.append(mask_coverage_result(cut.mask, pid))
        return {"nobg": nobg, "mask": mask, "cut": cut, "t": t}

    results = for_each_product(context, "segmentation", one)
    common = {"backend": config.backend, "stage_version": segment.VERSION}
    yield dg.MaterializeResult(
        asset_key="nobg_image",
        metadata=run_metadata({
            pid: {**common, "output": r["nobg"], "width": r["cut"].rgba.width, "height": r["cut"].rgba.height,
                  "timings_ms": r["t"].ms, "preview": dg.MetadataValue.md(preview_markdown(r["cut"].rgba))}
            for pid, r in results.items()
        }),
    )
    yield dg.MaterializeResult(
        asset_key="mask",
        metadata=run_metadata({
            pid: {**common, "output": r["mask"], "coverage": round(float(r["cut"].stats.get("coverage", 0.0)), 4),
                  "timings_ms": r["t"].ms,
                  "preview": dg.MetadataValue.md(preview_markdown(r["cut"].mask))}
            for pid, r in results.items()
        }),
        check_results=[worst(checks)],
    )

