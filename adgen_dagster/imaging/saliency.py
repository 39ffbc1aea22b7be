"""From a salient-object model's coarse maps to a full-resolution alpha (no model in here).

A model such as U²-Net-p sees the photo squeezed to 320 x 320: its map is right about
*what* the product is on an ordinary photo (a table, a shelf, plants behind), and coarse
about *where* its outline runs. These steps were kept because
each one measured better on the development set (`bench/segment_quality.py --steps`
prints what each buys):

1. **Detail shot**: when nothing in the photo is salient (the map's peak is low), the
   product fills the frame (a close-up of a fabric, a lemon's skin): the whole photo is
   the product. This is a decision, not a failure: the composite then shows the photo.
2. **Edges**: the map, upsampled to the photo's size, is steepened around 0.5, because
   upsampling a 320 px map spreads a sharp edge over several pixels.
3. **Specks**: pieces far smaller than the largest piece are dropped.
4. **Second view**: when the full view was unsure (many half-sure pixels per product pixel),
   the model also looks at the photo at 256 x 256 (a coarser view that sees large and
   close-up products whole). If the two views disagree, the one whose outline follows the
   photo's own edges better wins (`edge_alignment`): a true outline sits on an edge of the
   photo, a guessed one mostly does not.

What was measured and *not* kept (see the benchmark's step table): a second pass on the
product's crop (it helped at one photo size and hurt at others, and costs a model run),
flips at test time, GrabCut seeded from the map, band matting on the map's boundary.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["edge_alignment", "iou", "is_detail_shot", "to_alpha", "uncertain_ratio", "upsample"]


def upsample(m: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) if m.shape != (height, width) else m


def is_detail_shot(raw_peak: float, threshold: float) -> bool:
    """Nothing stands out (the model's un-normalised peak is below `threshold`): the product
    fills the frame."""
    return raw_peak < threshold


def drop_specks(alpha: np.ndarray, min_fraction: float) -> np.ndarray:
    """Alpha without the pieces (alpha > 0.5, 8-connected) smaller than `min_fraction` of the
    largest piece."""
    hard = (alpha > 0.5).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(hard, connectivity=8)
    if n <= 2 or min_fraction <= 0:
        return alpha
    areas = st[1:, cv2.CC_STAT_AREA]
    drop = np.zeros(n, bool)
    drop[1:] = areas < min_fraction * areas.max()
    if not drop.any():
        return alpha
    # the soft rim around a dropped piece goes with it
    gone = cv2.dilate(drop[lab].astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    keep = cv2.dilate(((hard > 0) & ~drop[lab]).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    out = alpha.copy()
    out[gone & ~keep] = 0.0
    return out


def steepen(alpha: np.ndarray, gain: float) -> np.ndarray:
    """Alpha pushed away from 0.5 by `gain` (1: unchanged), clipped to [0, 1]."""
    if gain == 1.0:
        return alpha
    return np.clip((alpha - 0.5) * gain + 0.5, 0.0, 1.0)


def to_alpha(full: np.ndarray, gain: float, min_component: float) -> np.ndarray:
    """Steps 3 and 4 on a full-resolution map."""
    return drop_specks(steepen(full.astype(np.float32), gain), min_component)


def uncertain_ratio(m: np.ndarray) -> float:
    """Half-sure pixels (0.2 < m < 0.8) per product pixel (m > 0.5): how unsure a map is."""
    return float(((m > 0.2) & (m < 0.8)).sum()) / max(int((m > 0.5).sum()), 1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a > 0.5, b > 0.5
    union = int((x | y).sum())
    return 1.0 if union == 0 else float((x & y).sum()) / union


def edge_alignment(grey: np.ndarray, alpha: np.ndarray) -> float:
    """How strongly the photo changes along the cut-out's outline, relative to the photo's
    average (1: no more than anywhere). `grey`: float32 HxW; the frame's own edge is ignored."""
    hard = (alpha > 0.5).astype(np.uint8)
    if not hard.any() or hard.all():
        return 0.0
    k = np.ones((3, 3), np.uint8)
    outline = (cv2.dilate(hard, k) - cv2.erode(hard, k)) > 0
    outline[0] = outline[-1] = False
    outline[:, 0] = outline[:, -1] = False
    if not outline.any():
        return 0.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    mag = cv2.magnitude(gx, gy)
    return float(mag[outline].mean() / (mag.mean() + 1e-6))
