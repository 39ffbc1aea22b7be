"""From a salient-object model's coarse maps to a full-resolution alpha (no model in here).

A model such as U²-Net-p sees the photo squeezed to 320 x 320: its map is right about
*what* the product is on an ordinary photo (a table, a shelf, plants behind), and coarse
about *where* its outline runs. These steps were kept because each one measured better
on the development set (`bench/segment_quality.py --steps` prints what each buys):

1. **Crop pass**: the model runs a second time on the product's box (plus a margin),
   which gives it 1.5-3x the pixels on the product: thin parts and outlines improve.
   Skipped when the box is most of the photo (nothing to gain).
2. **Detail shot**: when nothing in the photo is salient (the map's peak is low), the
   product fills the frame (a close-up of a fabric, a lemon's skin): the whole photo is
   the product. This is a decision, not a failure: the composite then shows the photo.
3. **Edges**: the map, upsampled to the photo's size, is steepened around 0.5, because
   upsampling a 320 px map spreads a sharp edge over several pixels.
4. **Specks**: pieces far smaller than the largest piece are dropped.
5. **Second view**: when the full view was unsure (many half-sure pixels per product pixel),
   the model also looks at the photo at 256 x 256 (a coarser view that sees large and
   close-up products whole). If the two views disagree, the one whose outline follows the
   photo's own edges better wins (`edge_alignment`): a true outline sits on an edge of the
   photo, a guessed one mostly does not.

What was measured and *not* kept (see the benchmark's step table): flips at test time,
GrabCut seeded from the map, band matting on the map's boundary, padding the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CropBox", "crop_box", "edge_alignment", "fuse_crop", "iou", "is_detail_shot", "to_alpha", "uncertain_ratio"]


@dataclass(frozen=True)
class CropBox:
    """A box (y0, y1, x0, x1) in full-resolution pixels, end-exclusive."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def area(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)


def upsample(m: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) if m.shape != (height, width) else m


def crop_box(saliency: np.ndarray, width: int, height: int, margin: float, max_area: float) -> CropBox | None:
    """The product's box (where the map > 0.5) with `margin` of its size around it, at full
    resolution; None when there is nothing, or the box would cover more than `max_area` of
    the photo."""
    hs, ws = saliency.shape
    ys, xs = np.nonzero(saliency > 0.5)
    if len(ys) == 0:
        return None
    sy, sx = height / hs, width / ws
    y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
    x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
    my, mx = (y1 - y0) * margin + 2 * sy, (x1 - x0) * margin + 2 * sx
    box = CropBox(max(0, int(y0 - my)), min(height, int(np.ceil(y1 + my))),
                  max(0, int(x0 - mx)), min(width, int(np.ceil(x1 + mx))))
    if box.area > max_area * width * height or box.y1 - box.y0 < 16 or box.x1 - box.x0 < 16:
        return None
    return box


def fuse_crop(full: np.ndarray, crop: np.ndarray, box: CropBox) -> np.ndarray:
    """The full-resolution map `full` with the box replaced by the crop pass's map."""
    out = full.copy()
    out[box.y0:box.y1, box.x0:box.x1] = upsample(crop, box.x1 - box.x0, box.y1 - box.y0)
    return out


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
