"""The Dagster assets: one per stage of the registry, built by `factory`; one module per stage's own parts."""

import warnings

import dagster as dg

# `backfill_policy=` on @asset is marked beta in Dagster 1.13; say so once here, not per asset.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message="Parameter `resource_defs`", category=dg.BetaWarning)
# Partitioned check specs (per-product check status, assets_defs/checks.py) are a preview feature.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

from adgen_dagster.settings import get_settings  # noqa: E402
from assets_defs import ad_creatives, analysis, background, composite, product_image, retouched, segmentation  # noqa: E402
from assets_defs.factory import build_assets  # noqa: E402

# Each stage's asset plan (assets_defs/<stage>.py): a new stage adds its module here.
PLANS = {m.PLAN.stage: m.PLAN for m in (product_image, segmentation, background, composite, retouched, analysis,
                                         ad_creatives)}

PIPELINE_ASSETS = build_assets(PLANS, get_settings())

__all__ = ["PIPELINE_ASSETS", "PLANS"]
