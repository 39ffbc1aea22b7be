"""`background`: a new backdrop for the product, from its details and colours."""

from assets_defs.factory import AssetPlan

PLAN = AssetPlan(
    "background",
    backend_help="Background backend.",
    description="A new background (studio sweep or gradient) in colours chosen from the product's "
    "details (palette, style) or, failing those, a tint that sets off the product's own colours.",
)
