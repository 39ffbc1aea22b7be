"""All stages chained without Dagster, for benchmarks and one-off use.

The registry's steps back to back in memory (`stage_runner.run_chain`, as `adgen run`
does), with the same settings as the assets, so "core time" in the benchmarks is exactly
the work the assets wrap, stage by stage (`timings_ms`, keyed by stage name).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from adgen_dagster.encoding import decode_png
from adgen_dagster.imaging.ad_params import AdCreative
from adgen_dagster.imaging.ads import render_ads
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.settings import AdgenSettings, get_settings
from adgen_dagster.stage_runner import ChainResult, chain_for, run_chain
from adgen_dagster.stages import StageContext


def run_product(
    data: bytes,
    name: str,
    product_id: str,
    details: Optional[ProductDetails] = None,
    settings: Optional[AdgenSettings] = None,
    around_stage: Optional[Callable[[str, Callable[[], Any]], Any]] = None,
) -> ChainResult:
    """Every stage for one upload named `name`. `around_stage(name, fn)` may wrap each stage (profiling)."""
    sidecar = details.model_dump_json().encode("utf-8") if details is not None else b""
    return run_chain(chain_for(settings or get_settings()), StageContext(product_id, name),
                     {"upload": data, "sidecar": sidecar}, around=around_stage)


def ad_creatives_of(res: ChainResult, settings: Optional[AdgenSettings] = None) -> list[AdCreative]:
    """A chained product's ads as objects (layout, page, image): the renderer run again on its inputs."""
    return render_ads(decode_png(res.files["retouched.png"]), Analysis.model_validate_json(res.files["analysis.json"]),
                      ProductDetails.model_validate_json(res.files["details.json"]), (settings or get_settings()).ads)
