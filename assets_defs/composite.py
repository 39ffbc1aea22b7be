"""`composite`: the cut-out placed on the background with a contact shadow."""

from assets_defs.factory import AssetPlan

PLAN = AssetPlan(
    "composite",
    description="The product scaled and placed on the background with a soft contact shadow. "
    "Also stores `composite_mask.png`, the product's alpha on the canvas, for retouch and analysis.",
)
