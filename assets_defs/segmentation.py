"""`nobg_image` + `mask`: one segmentation step, two assets, and the cut-out's checks."""

import dagster as dg

from adgen_dagster.imaging.segment_gate import CutoutRejected
from adgen_dagster.stage_runner import StageResult
from adgen_dagster.stages import Stage
from assets_defs.checks import CUTOUT_QUALITY, MASK_COVERAGE, cutout_quality_result, mask_coverage_result
from assets_defs.common import stage_metadata
from assets_defs.factory import AssetPlan, Check
from resources.store_resource import StoreResource


def metadata(store: StoreResource, pid: str, r: StageResult, stage: Stage, backend: str) -> dict[str, dict]:
    """Each asset shows its own part of the step's metadata."""
    v = stage.version
    return {
        "nobg_image": stage_metadata(store, pid, r, "nobg_image.png", v, backend, only=("width", "height", "preview")),
        "mask": {**stage_metadata(store, pid, r, "mask.png", v, backend, only=("coverage",)),
                 "preview": dg.MetadataValue.md(r.metadata["mask_preview"])},
    }


PLAN = AssetPlan(
    "segmentation",
    backend_help="Cut-out backend.",
    description={
        "nobg_image": "The product cut out: RGBA, foreground colours re-estimated so no fringe of the old background remains.",
        "mask": "The product's soft alpha mask (0-255).",
    },
    checks=[
        Check(MASK_COVERAGE, "mask", "Mask covers between 0.5% and 99% of the image.",
              lambda md, pid: mask_coverage_result(md["coverage"], pid)),
        Check(CUTOUT_QUALITY, "mask", "The cut-out can be trusted: not nothing or a speck, the model was "
              "confident, the product is not cut off by the frame (else the product fails here).",
              lambda md, pid: cutout_quality_result("", pid), rejects=(CutoutRejected, cutout_quality_result)),
    ],
    metadata=metadata,
)
