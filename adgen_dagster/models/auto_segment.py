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

import time

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging import saliency
from adgen_dagster.imaging.segment import (Cutout, SegmentParams, backdrop_fit, cutout_classical, cutout_from_alpha,
                                           has_informative_alpha, split_input)
from adgen_dagster.models import u2netp


def is_studio(fit: dict, p: SegmentParams) -> bool:
    return (fit["bg_noise"] <= p.studio_noise and fit["bg_border_fit"] >= p.studio_fit
            and fit["bg_lightness"] >= p.studio_lightness)


def cutout_auto(image: Image.Image, params: SegmentParams | None = None) -> Cutout:
    p = params or SegmentParams()
    if has_informative_alpha(image):
        return cutout_classical(image, p)  # the upload's own alpha is kept
    t0 = time.perf_counter()
    rgb8, _ = split_input(image)
    fit = backdrop_fit(rgb8, p)
    alpha, stats = u2netp.neural_alpha(rgb8, p)
    stats = {"source": "segmented", **stats, **fit}
    if is_studio(fit, p):
        classical = cutout_classical(image, p)
        c_alpha = np.asarray(classical.mask, np.float32) / 255.0
        agree = saliency.iou(alpha, c_alpha)
        stats["agreement"] = round(agree, 3)
        if stats.get("detail_shot") or agree < p.studio_agreement:
            grey = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
            edges = [0.0 if stats.get("detail_shot") else saliency.edge_alignment(grey, alpha),
                     saliency.edge_alignment(grey, c_alpha)]
            stats["studio_edges"] = [round(e, 3) for e in edges]  # neural, classical
            if edges[1] >= edges[0]:
                classical.stats.update({k: v for k, v in stats.items() if k not in ("timings_ms", "detail_shot")},
                                       path="classical", uncertain_ratio=0.0,  # not the model's guess
                                       why="studio backdrop; the neural cut-out " + (
                                           "found nothing" if stats.get("detail_shot") else
                                           "disagrees and its outline follows the photo's edges less"))
                return classical
            stats["why"] = "studio backdrop; the neural outline follows the photo's edges better"
        else:
            stats["why"] = "studio backdrop; neural and classical agree"
    else:
        stats["why"] = "not a plain studio backdrop"
    stats = {"version": u2netp.VERSION, "path": "u2netp", **stats}
    cut = cutout_from_alpha(rgb8.astype(np.float32) * (1.0 / 255.0), alpha, stats)
    cut.stats["timings_ms"]["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return cut
