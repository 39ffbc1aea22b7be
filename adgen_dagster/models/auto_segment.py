"""`auto`, the default segmenter: the shipped neural model, or the classical path where it is better.

Measured on the development set and the sample photos (`bench/segment_quality.py`): the
neural cut-out (U²-Net-p refined, `models/u2netp.py`) is far better on ordinary photos (a
product on a table, a shelf, in front of plants), where the classical path has no plain
backdrop to model. On a clean studio backdrop the classical path's backdrop model is the
better judge where the two disagree: a grid of white bulbs on white, which the model
barely sees, or a bag's inside filling the frame. So:

1. the photo's border is fitted with the classical backdrop model (cheap, 512 px);
2. not a studio backdrop (noisy, unfittable or dark border): the neural cut-out;
3. a studio backdrop: both run; the neural cut-out is kept when it agrees with the
   classical one (IoU >= `studio_agreement`). When they disagree, or the model found
   nothing, the one whose outline follows the photo's edges better wins
   (`saliency.edge_alignment`): a plain backdrop can still hold a cable, clouds or a
   cast shadow that the backdrop model takes for product.

`stats["path"]` and `stats["why"]` record the choice for the materialization's metadata.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging import saliency
from adgen_dagster.imaging.backend import OnCpuSegmenter
from adgen_dagster.imaging.segment import Cutout, SegmentParams, backdrop_fit, classical_alpha, cutout_with
from adgen_dagster.models import u2netp


def is_studio(fit: dict, p: SegmentParams) -> bool:
    return (fit["bg_noise"] <= p.studio_noise and fit["bg_border_fit"] >= p.studio_fit
            and fit["bg_lightness"] >= p.studio_lightness)


def cutout_auto(image: Image.Image, params: SegmentParams | None = None) -> Cutout:
    p = params or SegmentParams()
    return cutout_with(image, lambda rgb8: auto_alpha(rgb8, p))


class AutoSegmenter(OnCpuSegmenter):
    """The `auto` segmenter, the default (`imaging.backend.Segmenter`): `cutout_auto`."""

    name = "auto"
    description = ("CPU, shipped model: U2-Net-p refined, or classical on a clean studio backdrop where it is "
                   "better")

    def __call__(self, image: Image.Image, params: SegmentParams | None = None) -> Cutout:
        return cutout_auto(image, params)


def auto_alpha(rgb8: np.ndarray, p: SegmentParams) -> tuple[np.ndarray, dict]:
    """Steps 1-3 of the module docstring: (alpha, stats) of the chosen cut-out."""
    fit = backdrop_fit(rgb8, p)
    studio = is_studio(fit, p)
    # On a studio backdrop the classical cut-out runs beside the model (OpenCV releases the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        classical = pool.submit(classical_alpha, rgb8, p) if studio else None
        alpha, stats = u2netp.neural_alpha(rgb8, p)
        stats = {"version": u2netp.VERSION, "source": "segmented", "path": "u2netp", **stats, **fit}
        if classical is None:
            stats["why"] = "not a plain studio backdrop"
        else:
            alpha, stats = _studio_choice(rgb8, alpha, stats, *classical.result(), p)
    return alpha, stats


def _studio_choice(rgb8: np.ndarray, alpha: np.ndarray, stats: dict, c_alpha: np.ndarray, c_stats: dict,
                   p: SegmentParams) -> tuple[np.ndarray, dict]:
    """Step 3 of the module docstring: (alpha, stats) of the neural or the classical cut-out."""
    agree = saliency.iou(alpha, c_alpha)
    stats["agreement"] = round(agree, 3)
    if not stats.get("detail_shot") and agree >= p.studio_agreement:
        stats["why"] = "studio backdrop; neural and classical agree"
        return alpha, stats
    grey = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
    edges = [0.0 if stats.get("detail_shot") else saliency.edge_alignment(grey, alpha),
             saliency.edge_alignment(grey, c_alpha)]
    stats["studio_edges"] = [round(e, 3) for e in edges]  # neural, classical
    if edges[0] > edges[1]:
        stats["why"] = "studio backdrop; the neural outline follows the photo's edges better"
        return alpha, stats
    kept = {k: v for k, v in stats.items() if k not in ("timings_ms", "detail_shot", "version", "path")}
    return c_alpha, {**c_stats, **kept, "path": "classical", "uncertain_ratio": 0.0,  # not the model's guess
                     "why": "studio backdrop; the neural cut-out " + (
                         "found nothing" if stats.get("detail_shot") else
                         "disagrees and its outline follows the photo's edges less")}
