"""The Dagster assets, one module per stage. Thin: read inputs, call the core, write, report."""

import warnings

import dagster as dg

# `backfill_policy=` on @asset is marked beta in Dagster 1.13; say so once here, not per asset.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message="Parameter `resource_defs`", category=dg.BetaWarning)
# Partitioned check specs (per-product check status, assets_defs/checks.py) are a preview feature.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

from assets_defs.ad_creatives import ad_creatives
from assets_defs.analysis import analysis
from assets_defs.background import background
from assets_defs.composite import composite
from assets_defs.product_image import product_image
from assets_defs.retouched import retouched
from assets_defs.segmentation import segmentation

PIPELINE_ASSETS = [product_image, segmentation, background, composite, retouched, analysis, ad_creatives]

__all__ = ["PIPELINE_ASSETS", *[a.op.name for a in PIPELINE_ASSETS]]
