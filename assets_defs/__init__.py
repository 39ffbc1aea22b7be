"""The Dagster assets: one per stage of the registry, built by `factory`; one module per stage's own parts.

Nothing is built at import: `pipeline_assets(settings)` builds them (the code location
calls it when Dagster loads it), so the settings they take defaults from are those in
force then. `PIPELINE_ASSETS` is the same list for the settings of this process, built on
first use.
"""

from functools import lru_cache
from typing import Optional

import dagster as dg

from adgen_dagster.settings import AdgenSettings, get_settings
from assets_defs import ad_creatives, analysis, background, composite, product_image, retouched, segmentation
from assets_defs.factory import build_assets

# Each stage's asset plan (assets_defs/<stage>.py): a new stage adds its module here.
PLANS = {m.PLAN.stage: m.PLAN for m in (product_image, segmentation, background, composite, retouched, analysis,
                                         ad_creatives)}


def pipeline_assets(settings: Optional[AdgenSettings] = None) -> list[dg.AssetsDefinition]:
    """Every stage's asset, in graph order, with run-config defaults and batch size from `settings`."""
    return build_assets(PLANS, settings or get_settings())


@lru_cache(maxsize=1)
def _default_assets() -> list[dg.AssetsDefinition]:
    return pipeline_assets()


def __getattr__(name: str):
    if name == "PIPELINE_ASSETS":
        return _default_assets()
    raise AttributeError(f"module 'assets_defs' has no attribute {name!r}")


__all__ = ["PIPELINE_ASSETS", "PLANS", "pipeline_assets"]
