"""`product_image`: the upload decoded safely and normalised, plus its details."""

from assets_defs.factory import AssetPlan

PLAN = AssetPlan(
    "product_image",
    kinds={"python", "image"},
    description="The upload decoded safely (EXIF orientation, 8-bit RGB/RGBA, bounded size) as PNG, "
    "and the product details from its sidecar JSON (details.json). The upload itself is never changed.",
)
