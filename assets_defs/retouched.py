"""`retouched`: edge blending, colour harmonisation, sharpening, brightness and contrast."""

from assets_defs.factory import AssetPlan

PLAN = AssetPlan(
    "retouched",
    description="The composite retouched: edges blended on the boundary band only, the product's colour "
    "adapted to the background's light, sharpened, brightness x1.05 and contrast x1.1 by default.",
)
