"""Where the product is and where the text goes: a resolution pyramid, the product mask, the text zone.

The product comes from its mask, or without one from what a smooth studio-background fit
cannot explain; the text zone is the least busy free band that keeps clear of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .analysis_params import POSITIONS, AnalysisParams
from .colour import srgb_to_lab


# ------------------------------------------------------------------------------------
# small helpers


def resize_to(arr: np.ndarray, longest: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(1.0, longest / max(h, w))
    if s >= 1.0:
        return arr
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(arr, size, interpolation=interpolation)


class Pyramid:
    """Downsamples of one image, each made from the smallest cached one that is big enough."""

    def __init__(self, rgb: np.ndarray):
        self._levels = [rgb]

    def get(self, longest: int) -> np.ndarray:
        src = self._levels[0]
        for lvl in self._levels:
            if max(lvl.shape[:2]) >= longest and max(lvl.shape[:2]) < max(src.shape[:2]):
                src = lvl
        out = resize_to(src, longest)
        if out is not src:
            self._levels.append(out)
        return out


def scale_box(box: tuple[int, int, int, int], sx: float, sy: float, w: int, h: int) -> tuple[int, int, int, int]:
    """Scale a pixel box (exclusive ends) by sx, sy, rounding outwards, clamped; never empty."""
    x0, y0, x1, y1 = box
    nx0 = min(w - 1, max(0, int(math.floor(x0 * sx))))
    ny0 = min(h - 1, max(0, int(math.floor(y0 * sy))))
    nx1 = max(nx0 + 1, min(w, int(math.ceil(x1 * sx))))
    ny1 = max(ny0 + 1, min(h, int(math.ceil(y1 * sy))))
    return nx0, ny0, nx1, ny1


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _area(b: tuple[int, int, int, int] | None) -> int:
    if b is None:
        return 0
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def _intersect(a, b):
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


# ------------------------------------------------------------------------------------
# product region


def estimate_product(pyr: Pyramid, p: AnalysisParams) -> np.ndarray:
    """A boolean product mask at estimate_size: what a smooth studio background cannot explain.

    Fits a cubic polynomial in (x, y) to each Lab channel with iterative re-weighting
    (outliers = product drop out of the fit), then keeps pixels far from the fit, plus
    closed strong outlines (a white product on a white sweep has an outline but no
    colour difference), minus thin full-width streaks (a floor seam).
    """
    small = pyr.get(p.estimate_size)
    h, w = small.shape[:2]
    lab = srgb_to_lab(small.astype(np.float32) / 255.0)
    if h < 4 or w < 4:
        return np.zeros((h, w), bool)

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs = xs / max(1, w - 1) * 2 - 1
    ys = ys / max(1, h - 1) * 2 - 1
    x, y = xs.ravel(), ys.ravel()
    A = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3], axis=1)
    target = lab.reshape(-1, 3)

    L = np.ascontiguousarray(lab[..., 0])
    gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.sqrt(gx * gx + gy * gy)
    edge = grad > p.estimate_edge_threshold

    # Start from the smooth pixels, with the border ring counted double: a studio
    # product rarely touches all four sides.
    wts = (~edge).astype(np.float32).ravel()
    ring = np.zeros((h, w), np.float32)
    bw = max(1, min(h, w) // 16)
    ring[:bw, :] = ring[-bw:, :] = ring[:, :bw] = ring[:, -bw:] = 1.0
    wts = wts * (1.0 + ring.ravel())
    resid = np.zeros(h * w, np.float32)
    for _ in range(4):
        sw = np.sqrt(wts)[:, None]
        if float(wts.sum()) < A.shape[1] * 4:
            break
        Aw = A * sw
        # Normal equations (10x10): much faster than an SVD least squares on 16k rows.
        coef = np.linalg.solve(
            (Aw.T @ Aw).astype(np.float64) + 1e-6 * np.eye(A.shape[1]), (Aw.T @ (target * sw)).astype(np.float64)
        ).astype(np.float32)
        resid = np.linalg.norm(target - A @ coef, axis=1)
        bg = resid < p.estimate_delta_e
        wts = (bg & ~edge.ravel()).astype(np.float32) * (1.0 + ring.ravel())

    fg = (resid >= p.estimate_delta_e).reshape(h, w).astype(np.uint8)
    outline = edge.astype(np.uint8)
    k = max(1, round(max(h, w) / 64))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    cand = cv2.morphologyEx(fg | outline, cv2.MORPH_CLOSE, kernel)
    # Fill holes: whatever the border cannot reach through background is inside a product.
    ff = np.pad((1 - cand).astype(np.uint8), 1, constant_values=1)  # 1 = background
    cv2.floodFill(ff, None, (0, 0), 2)
    holes = ff[1:-1, 1:-1] == 1  # background the border cannot reach
    cand = (cand.astype(bool) | holes).astype(np.uint8)
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, kernel)

    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    keep = np.zeros(n, bool)
    min_area = p.min_product_area_fraction * h * w
    for i in range(1, n):
        x0, y0, bw_, bh_, area = stats[i]
        if area < max(2, min_area):
            continue
        if bw_ >= 0.9 * w and bh_ <= 0.08 * h:  # a horizontal seam / floor line
            continue
        if bh_ >= 0.9 * h and bw_ <= 0.08 * w:  # a vertical streak at a border
            continue
        keep[i] = True
    return keep[labels]


# ------------------------------------------------------------------------------------
# zone


@dataclass
class Zone:
    position: str
    box: tuple[int, int, int, int]  # full-resolution pixels
    tier: int
    busyness: float
    overlap: float
    score: float


def choose_zone(
    W: int,
    H: int,
    product: tuple[int, int, int, int],
    edges_integral: np.ndarray,
    detail_integral: np.ndarray,
    edge_shape: tuple[int, int],
    mask_small: np.ndarray,
    p: AnalysisParams,
) -> Zone:
    """Pick the text box.

    Each position has a band (a horizontal strip of `band_fraction` of the height, inside
    the page margins). Tier 1: the largest rectangle of the band that keeps
    `product_gap_fraction` away from the product box and is at least
    `min_zone_height_fraction` high and `min_zone_width_fraction` wide (above, below, left
    or right of the product). Tier 2 (only if tier 1 is empty): the same without the gap
    and with the relaxed height. Tier 3 (nothing free, e.g. the product fills the frame):
    the whole band, scored with the product's actual overlap. Within a tier the lowest
    score wins: busyness (edge density), plus the unused part of the band, plus a small
    penalty by the designer's position order.
    """
    eh, ew = edge_shape
    mx, my = round(p.side_margin_fraction * W), round(p.vertical_margin_fraction * H)
    safe = (mx, my, max(mx + 1, W - mx), max(my + 1, H - my))
    bh = p.band_fraction * H
    bands = {
        "top": (0.0, bh),
        "center": ((H - bh) / 2, (H + bh) / 2),
        "bottom": (H - bh, float(H)),
    }
    order = p.position_order.split(",")
    rank = {pos: (order.index(pos) if pos in order else len(order)) for pos in POSITIONS}

    def busyness(box) -> float:
        """max(edge density, texture energy), each scaled to [0, 1]."""
        x0, y0, x1, y1 = scale_box(box, ew / W, eh / H, ew, eh)
        n = max(1, (x1 - x0) * (y1 - y0))

        def mean(ii):
            return float(ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]) / n

        edge = mean(edges_integral) / p.busy_edge_density
        span = max(1e-6, p.detail_full - p.detail_floor)
        detail = (mean(detail_integral) - p.detail_floor) / span
        return float(np.clip(max(edge, detail), 0.0, 1.0))

    def mask_overlap(box) -> float:
        mh, mw = mask_small.shape
        x0, y0, x1, y1 = scale_box(box, mw / W, mh / H, mw, mh)
        return float(mask_small[y0:y1, x0:x1].mean())

    def free_rects(band_box, blocked, min_h):
        """Largest-first free sub-rectangles of band_box avoiding one blocked rectangle."""
        if _intersect(band_box, blocked) is None:
            return [band_box]
        bx0, by0, bx1, by1 = band_box
        qx0, qy0, qx1, qy1 = blocked
        rects = [
            (bx0, by0, bx1, min(by1, qy0)),  # above
            (bx0, max(by0, qy1), bx1, by1),  # below
            (bx0, by0, min(bx1, qx0), by1),  # left
            (max(bx0, qx1), by0, bx1, by1),  # right
        ]
        min_w = max(1.0, p.min_zone_width_fraction * W - 0.5)
        ok = [r for r in rects if r[3] - r[1] >= max(1.0, min_h) and r[2] - r[0] >= min_w]
        return sorted(ok, key=_area, reverse=True)

    band_boxes = {}
    for pos, (b0, b1) in bands.items():
        y0 = max(safe[1], int(math.floor(b0)))
        y1 = min(safe[3], int(math.ceil(b1)))
        band_boxes[pos] = (safe[0], y0, safe[2], max(y0 + 1, y1))

    gap = round(p.product_gap_fraction * H)
    px0, py0, px1, py1 = product
    tiers = [
        ((px0 - gap, py0 - gap, px1 + gap, py1 + gap), p.min_zone_height_fraction * H),
        ((px0, py0, px1, py1), p.relaxed_zone_height_fraction * H),
    ]
    for tier, (blocked, min_h) in enumerate(tiers, start=1):
        cands = []
        for pos in POSITIONS:
            band_box = band_boxes[pos]
            rects = free_rects(band_box, blocked, max(1.0, min_h - 0.5))
            if not rects:
                continue
            r = rects[0]
            b = busyness(r)
            unused = 1.0 - _area(r) / max(1, _area(band_box))
            score = p.busyness_weight * b + p.size_weight * unused + p.position_penalty * rank[pos]
            cands.append(Zone(pos, r, tier, b, 0.0, score))
        if cands:
            return min(cands, key=lambda z: (z.score, rank[z.position]))

    cands = []
    for pos in POSITIONS:
        r = band_boxes[pos]
        b = busyness(r)
        ov = mask_overlap(r)
        score = p.busyness_weight * b + p.overlap_weight * ov + p.position_penalty * rank[pos]
        cands.append(Zone(pos, r, 3, b, ov, score))
    return min(cands, key=lambda z: (z.score, rank[z.position]))
