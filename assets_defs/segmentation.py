"""`nobg_image` + `mask`: one segmentation step, two assets."""

import dagster as dg

from adgen_dagster.imaging import segment
from adgen_dagster.imaging.segment import SegmentParams
from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import get_settings
from adgen_dagster.imaging.segment_gate import CutoutRejected
from assets_defs.checks import (CUTOUT_QUALITY, MASK_COVERAGE, check_spec, cutout_quality_result, mask_coverage_result,
                                per_product_evaluations)
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import backend_fields, configured_backend, stage_config, to_params
from assets_defs.run_config import rule, starting
from resources import stages
from resources.object_store import ObjectNotFound
from resources.products import upload_for
from resources.stages import Compute, Files
from resources.gpu_resource import GPU, GpuResource
from resources.store_resource import StoreResource

SegmentConfig = stage_config(
    "SegmentConfig",
    get_settings().segment,
    **backend_fields("segmenter", get_settings().segmenter, "Cut-out backend."),
)


rule("segmentation", SegmentConfig, SegmentParams, "segmenter")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("nobg_image", deps=["product_image"], kinds={"image"},
                     description="The product cut out: RGBA, foreground colours re-estimated so no fringe of the old background remains."),
        dg.AssetSpec("mask", deps=["product_image"], kinds={"image"}, description="The product's soft alpha mask (0-255)."),
    ],
    check_specs=[check_spec(MASK_COVERAGE, "mask", "Mask covers between 0.5% and 99% of the image."),
                 check_spec(CUTOUT_QUALITY, "mask", "The cut-out can be trusted: not nothing or a speck, the model was "
                            "confident, the product is not cut off by the frame (else the product fails here).")],
    partitions_def=products_partitions,
    group_name="adgen",
    backfill_policy=dg.BackfillPolicy.multi_run(get_settings().batch_size),
    pool="gpu",
    resource_defs={"gpu": GPU},
    name="segmentation",
    code_version=segment.VERSION,
    can_subset=False,
)
def segmentation(context: dg.AssetExecutionContext, config: SegmentConfig, store: StoreResource, gpu: GpuResource):
    with starting(context, "segmentation"):
        params = to_params(config, SegmentParams)
        backend = configured_backend("segmenter", config, gpu)
    rejected: dict[str, str] = {}

    def compute(pid: str):
        return _noting_rejections(stages.segmentation(params, backend, _photo_name(store, pid)), pid, rejected)

    try:
        results = materialize_stage(context, store, "segmentation", segment.VERSION, params, compute=compute, backend=backend)
    except dg.Failure:
        if rejected:  # the gate's reasons also go on the check, each on its product's partition, before the step fails
            yield from per_product_evaluations(context, "mask", {pid: cutout_quality_result(why, pid)
                                                                 for pid, why in rejected.items()}, materialized=False)
        raise
    v = segment.VERSION
    yield dg.MaterializeResult(asset_key="nobg_image", metadata=run_metadata({
        pid: stage_metadata(store, pid, r, "nobg_image.png", v, config.backend, only=("width", "height", "preview"))
        for pid, r in results.items()
    }))
    yield dg.MaterializeResult(
        asset_key="mask",
        metadata=run_metadata({
            pid: {**stage_metadata(store, pid, r, "mask.png", v, config.backend, only=("coverage",)),
                  "preview": dg.MetadataValue.md(r.metadata["mask_preview"])}
            for pid, r in results.items()
        }),
    )
    yield from per_product_evaluations(context, "mask", {
        pid: mask_coverage_result(r.metadata["coverage"], pid) for pid, r in results.items()})
    yield from per_product_evaluations(context, "mask", {pid: cutout_quality_result("", pid) for pid in results})


def _photo_name(store: StoreResource, pid: str) -> str:
    """The upload's file name, for messages (the product id when the record is missing)."""
    try:
        return upload_for(store.get_store(), pid).file_name
    except ObjectNotFound:
        return pid


def _noting_rejections(compute: Compute, pid: str, rejected: dict[str, str]) -> Compute:
    """`compute`, recording in `rejected` why the quality gate refused this product's cut-out."""

    def run(files: Files):
        try:
            return compute(files)
        except CutoutRejected as exc:
            rejected[pid] = str(exc)
            raise

    for attr in ("batch", "batch_size"):
        if hasattr(compute, attr):
            setattr(run, attr, getattr(compute, attr))
    return run
