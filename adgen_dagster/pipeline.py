"""All stages chained without Dagster, for benchmarks and one-off use.

The assets call the same stage functions one at a time through the object store; this
module calls them back to back in memory, in the same order and with the same
settings, so "core time" in the benchmarks is exactly the work the assets wrap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from adgen_dagster.backends import get_analyzer, get_background, get_segmenter
from adgen_dagster.imaging.ad_params import AdCreative
from adgen_dagster.imaging.ads import render_ads
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.composite import Placed, composite
from adgen_dagster.imaging.decode import decode_upload
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.imaging.palette import product_colours
from adgen_dagster.imaging.retouch import retouch
from adgen_dagster.imaging.segment import Cutout
from adgen_dagster.imaging.segment_gate import check_cutout
from adgen_dagster.models.host import host_for
from adgen_dagster.settings import AdgenSettings, get_settings

STAGES = ("product_image", "segmentation", "background", "composite", "retouched", "analysis", "ad_creatives")


@dataclass
class ProductOutputs:
    product_image: Image.Image
    cutout: Cutout
    background: Image.Image
    placed: Placed
    retouched: Image.Image
    analysis: Analysis
    ads: list[AdCreative]
    timings_ms: dict[str, float] = field(default_factory=dict)


def run_product(
    data: bytes,
    name: str,
    product_id: str,
    details: ProductDetails | None = None,
    settings: AdgenSettings | None = None,
    around_stage: Callable[[str, Callable], object] | None = None,
) -> ProductOutputs:
    """Every stage for one upload. `around_stage(name, fn)` may wrap each stage (profiling)."""
    s = settings or get_settings()
    d = details or ProductDetails()
    timings: dict[str, float] = {}

    def stage(label: str, fn: Callable):
        t0 = time.perf_counter()
        out = around_stage(label, fn) if around_stage else fn()
        timings[label] = round((time.perf_counter() - t0) * 1000, 1)
        return out

    host = host_for(s.gpu)
    photo = stage("product_image", lambda: decode_upload(data, name, s.decode))
    cut = stage("segmentation",
                lambda: check_cutout(get_segmenter(s.segmenter, host=host)(photo, s.segment), s.segment, name))
    bg = stage(
        "background",
        lambda: get_background(s.background, host=host)(d, product_colours(photo), s.backdrop,
                                                        seed=d.seed_for(product_id)),
    )
    placed = stage("composite", lambda: composite(cut.rgba, bg, s.composite))
    final = stage("retouched", lambda: retouch(placed.image, placed.mask, bg, s.retouch))
    result = stage("analysis", lambda: get_analyzer(s.analyzer, host=host)(final, placed.mask, s.analysis))
    creatives = stage("ad_creatives", lambda: render_ads(final, result, d, s.ads))
    return ProductOutputs(photo, cut, bg, placed, final, result, creatives, timings)
