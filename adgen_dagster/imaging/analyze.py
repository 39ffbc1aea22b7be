"""Classical (CPU, model-free) analysis of a retouched ad image.

`analyze_classical` answers the questions the ad renderer needs, with numpy and OpenCV
only, in well under a second for a 1024x1024 image:

- **tone** (warm / cool / neutral): the mean Lab chroma projected on a warm axis
  (orange-red, Lab hue 45 deg); a dead zone around zero is neutral.
- **brightness**: mean WCAG relative luminance.
- **main_colours**: k-means in Lab on a small downsample (seeded, deterministic),
  near-duplicates merged, tiny clusters dropped, shares renormalised and sorted.
- **mood**: a few words from a small rule table over tone, brightness, saturation and
  contrast.
- **product_box**: bbox of the product mask (alpha > 127), or, without a mask, of the
  pixels that differ from a smooth (polynomial) fit of the studio background.
- **text_zone**: the least busy free band (top, center, bottom) that does not overlap
  the product, with side margins; see `_choose_zone` for the tiers and the score.
- **text_colour / text_contrast**: the candidate (tint of the background hue, then
  near-black / white, then pure black) that stays legible on the *worst* part of the
  zone (low/high luminance percentiles); `text_contrast` is its WCAG ratio against the
  zone's mean luminance.

Everything works in relative units (fractions of the image size), so any image size
works; 1024x1024 is the expected one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .analysis_model import HEX_PATTERN, Analysis, Box, ColourShare, TextZone
from .palette import dominant_colours
from .colour import (
    contrast_ratio,
    hex_luminance,
    lab_to_srgb,
    relative_luminance,
    rgb_to_hex,
    srgb_to_lab,
)

VERSION = "1"

POSITIONS = ("top", "center", "bottom")


class AnalysisParams(BaseModel):
    """Knobs of the classical analyzer. Defaults are tuned for 1024x1024 studio shots."""

    model_config = ConfigDict(extra="forbid")

    # --- working resolutions -------------------------------------------------------
    stats_size: int = Field(
        256, ge=16, le=2048, description="Longest side (px) of the downsample used for tone, brightness, mood and text colour."
    )
    edge_size: int = Field(512, ge=16, le=4096, description="Longest side (px) of the downsample used for edge density (busyness).")
    estimate_size: int = Field(
        128, ge=16, le=1024, description="Longest side (px) of the downsample used to estimate the product when no mask is given."
    )

    # --- palette -------------------------------------------------------------------
    n_colours: int = Field(5, ge=1, le=8, description="Number of k-means clusters (before merging near-duplicates).")
    palette_size: int = Field(64, ge=8, le=512, description="Longest side (px) of the downsample clustered by k-means.")
    merge_delta_e: float = Field(10.0, ge=0.0, description="Clusters closer than this CIE76 delta E are merged into one colour.")
    min_colour_share: float = Field(0.02, ge=0.0, lt=1.0, description="Colours with a smaller share are dropped (shares renormalised).")
    seed: int = Field(0, description="Seed of OpenCV's RNG for k-means++ initialisation (determinism).")

    # --- tone ----------------------------------------------------------------------
    tone_axis_degrees: float = Field(
        45.0, description="Lab hue angle (deg, a* towards b*) of the 'warm' direction; its opposite is 'cool'."
    )
    tone_neutral_threshold: float = Field(
        4.0, ge=0.0, description="|mean chroma projected on the warm axis| below this (Lab units) is 'neutral'."
    )

    # --- text zone -----------------------------------------------------------------
    band_fraction: float = Field(
        0.34, gt=0.0, le=1.0, description="Height of each candidate band (top, center, bottom) as a fraction of the image height."
    )
    side_margin_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="Left/right page margin of the text box, fraction of width.")
    vertical_margin_fraction: float = Field(0.04, ge=0.0, lt=0.5, description="Top/bottom page margin of the text box, fraction of height.")
    product_gap_fraction: float = Field(
        0.03, ge=0.0, lt=0.5, description="Minimum gap between the text box and the product box, fraction of the image height."
    )
    min_zone_height_fraction: float = Field(0.12, gt=0.0, le=1.0, description="A text box needs at least this height (headline room).")
    relaxed_zone_height_fraction: float = Field(
        0.08, gt=0.0, le=1.0, description="Second-tier minimum height (no gap to the product) when nothing else fits."
    )
    min_zone_width_fraction: float = Field(0.4, gt=0.0, le=1.0, description="A text box needs at least this width.")
    position_order: str = Field(
        "top,bottom,center",
        pattern=r"^(top|center|bottom)(,(top|center|bottom)){0,2}$",
        description="Designer preference among positions, best first; used as a small tie-breaking penalty.",
    )
    position_penalty: float = Field(0.04, ge=0.0, description="Score penalty per rank in position_order.")
    busyness_weight: float = Field(1.0, ge=0.0, description="Weight of the zone's busyness in the zone score (lower is better).")
    size_weight: float = Field(0.25, ge=0.0, description="Weight of 'how much of the band is unusable' in the zone score.")
    overlap_weight: float = Field(2.0, ge=0.0, description="Weight of product overlap, only used when no free band exists.")
    canny_low: int = Field(30, ge=0, le=1000, description="Canny low threshold (8-bit grey) for edge density.")
    canny_high: int = Field(90, ge=0, le=1000, description="Canny high threshold (8-bit grey) for edge density.")
    busy_edge_density: float = Field(
        0.12, gt=0.0, le=1.0, description="Edge-pixel density (at edge_size) that counts as fully busy (busyness 1)."
    )
    detail_sigma: float = Field(3.0, gt=0.0, description="Gaussian sigma (px at edge_size) separating detail from smooth shading.")
    detail_floor: float = Field(
        1.5, ge=0.0, description="Mean |grey - blurred grey| (8-bit levels) at or below which a zone has no texture (grain, JPEG noise)."
    )
    detail_full: float = Field(8.0, gt=0.0, description="Mean |grey - blurred grey| (8-bit levels) that counts as fully busy.")

    # --- text colour ---------------------------------------------------------------
    min_contrast: float = Field(4.5, ge=1.0, le=21.0, description="Required WCAG contrast on the worst part of the zone.")
    worst_case_percentile: float = Field(
        5.0, ge=0.0, le=50.0, description="Worst-case background luminances are these low/high percentiles (p, 100-p) of the zone."
    )
    prefer_tinted: bool = Field(True, description="Prefer a tint of the background hue over plain black/white when it is legible.")
    near_black: str = Field("#1a1a1a", pattern=HEX_PATTERN, description="Neutral dark text colour.")
    white: str = Field("#ffffff", pattern=HEX_PATTERN, description="Neutral light text colour.")
    dark_tint_lightness: float = Field(22.0, ge=0.0, le=100.0, description="L* of the dark tint of the background hue.")
    light_tint_lightness: float = Field(97.0, ge=0.0, le=100.0, description="L* of the light tint of the background hue.")
    dark_tint_max_chroma: float = Field(28.0, ge=0.0, description="Maximum Lab chroma of the dark tint.")
    light_tint_max_chroma: float = Field(8.0, ge=0.0, description="Maximum Lab chroma of the light tint.")
    tint_min_chroma: float = Field(
        4.0, ge=0.0, description="Background chroma below this is treated as grey: no tinted candidates (black/white only)."
    )

    # --- product estimation (no mask) ----------------------------------------------
    estimate_delta_e: float = Field(
        12.0, gt=0.0, description="Pixels further than this (CIE76) from the smooth background fit are product."
    )
    estimate_edge_threshold: float = Field(
        3.0, gt=0.0, description="L* gradient (L* units per px at estimate_size) counted as a product outline."
    )
    min_product_area_fraction: float = Field(
        0.002, ge=0.0, lt=1.0, description="Estimated product blobs smaller than this fraction of the image are noise."
    )

    # --- mood ----------------------------------------------------------------------
    bright_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Mean luminance at or above this is 'bright'.")
    dark_threshold: float = Field(0.12, ge=0.0, le=1.0, description="Mean luminance at or below this is 'dark'.")
    muted_chroma: float = Field(12.0, ge=0.0, description="Mean Lab chroma below this is muted (minimal, airy, premium).")
    vivid_chroma: float = Field(35.0, ge=0.0, description="Mean Lab chroma above this is vivid (vivid, playful).")
    low_contrast: float = Field(12.0, ge=0.0, description="Std of L* below this is low contrast (calm, soft).")
    high_contrast: float = Field(28.0, ge=0.0, description="Std of L* above this is high contrast (bold).")


# ------------------------------------------------------------------------------------
# small helpers


def _resize_to(arr: np.ndarray, longest: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(1.0, longest / max(h, w))
    if s >= 1.0:
        return arr
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(arr, size, interpolation=interpolation)


class _Pyramid:
    """Downsamples of one image, each made from the smallest cached one that is big enough."""

    def __init__(self, rgb: np.ndarray):
        self._levels = [rgb]

    def get(self, longest: int) -> np.ndarray:
        src = self._levels[0]
        for lvl in self._levels:
            if max(lvl.shape[:2]) >= longest and max(lvl.shape[:2]) < max(src.shape[:2]):
                src = lvl
        out = _resize_to(src, longest)
        if out is not src:
            self._levels.append(out)
        return out


def _scale_box(box: tuple[int, int, int, int], sx: float, sy: float, w: int, h: int) -> tuple[int, int, int, int]:
    """Scale a pixel box (exclusive ends) by sx, sy, rounding outwards, clamped; never empty."""
    x0, y0, x1, y1 = box
    nx0 = min(w - 1, max(0, int(math.floor(x0 * sx))))
    ny0 = min(h - 1, max(0, int(math.floor(y0 * sy))))
    nx1 = max(nx0 + 1, min(w, int(math.ceil(x1 * sx))))
    ny1 = max(ny0 + 1, min(h, int(math.ceil(y1 * sy))))
    return nx0, ny0, nx1, ny1


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
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


def _estimate_product(pyr: _Pyramid, p: AnalysisParams) -> np.ndarray:
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
class _Zone:
    position: str
    box: tuple[int, int, int, int]  # full-resolution pixels
    tier: int
    busyness: float
    overlap: float
    score: float


def _choose_zone(
    W: int,
    H: int,
    product: tuple[int, int, int, int],
    edges_integral: np.ndarray,
    detail_integral: np.ndarray,
    edge_shape: tuple[int, int],
    mask_small: np.ndarray,
    p: AnalysisParams,
) -> _Zone:
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
        x0, y0, x1, y1 = _scale_box(box, ew / W, eh / H, ew, eh)
        n = max(1, (x1 - x0) * (y1 - y0))

        def mean(ii):
            return float(ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]) / n

        edge = mean(edges_integral) / p.busy_edge_density
        span = max(1e-6, p.detail_full - p.detail_floor)
        detail = (mean(detail_integral) - p.detail_floor) / span
        return float(np.clip(max(edge, detail), 0.0, 1.0))

    def mask_overlap(box) -> float:
        mh, mw = mask_small.shape
        x0, y0, x1, y1 = _scale_box(box, mw / W, mh / H, mw, mh)
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
            cands.append(_Zone(pos, r, tier, b, 0.0, score))
        if cands:
            return min(cands, key=lambda z: (z.score, rank[z.position]))

    cands = []
    for pos in POSITIONS:
        r = band_boxes[pos]
        b = busyness(r)
        ov = mask_overlap(r)
        score = p.busyness_weight * b + p.overlap_weight * ov + p.position_penalty * rank[pos]
        cands.append(_Zone(pos, r, 3, b, ov, score))
    return min(cands, key=lambda z: (z.score, rank[z.position]))


# ------------------------------------------------------------------------------------
# text colour


def _tint(a: float, b: float, lightness: float, max_chroma: float, min_chroma: float) -> str:
    c = math.hypot(a, b)
    target_c = min(max_chroma, max(c, min_chroma))
    s = target_c / c if c > 1e-6 else 0.0
    rgb = lab_to_srgb(np.array([lightness, a * s, b * s], np.float32)) * 255.0
    return rgb_to_hex(rgb)


def _choose_text_colour(
    zone_rgb: np.ndarray, bg_ab: tuple[float, float], p: AnalysisParams
) -> tuple[str, float]:
    """(hex, contrast vs mean) of the most pleasant text colour legible on the worst part of the zone."""
    lum = relative_luminance(zone_rgb.reshape(-1, 3).astype(np.float32) / 255.0)
    lo = float(np.percentile(lum, p.worst_case_percentile))
    hi = float(np.percentile(lum, 100.0 - p.worst_case_percentile))
    mean = float(lum.mean())

    def worst(h: str) -> float:
        lc = hex_luminance(h)
        return min(contrast_ratio(lc, lo), contrast_ratio(lc, hi))

    def vs_mean(h: str) -> float:
        return contrast_ratio(hex_luminance(h), mean)

    groups: list[list[str]] = []
    a, b = bg_ab
    if p.prefer_tinted and math.hypot(a, b) >= p.tint_min_chroma:
        # The richest tint that is still legible: step the dark tint darker (and the
        # light one lighter) until it passes; each step is its own group so a lighter,
        # more colourful dark tint wins over a darker one.
        dark_ls = np.arange(p.dark_tint_lightness, 7.9, -6.0) if p.dark_tint_lightness >= 8 else [p.dark_tint_lightness]
        for i, dl in enumerate(dark_ls):
            ll = min(100.0, p.light_tint_lightness + 1.0 * i)
            groups.append(
                [
                    _tint(a, b, float(dl), p.dark_tint_max_chroma, p.tint_min_chroma),
                    _tint(a, b, ll, p.light_tint_max_chroma, 0.0),
                ]
            )
    groups.append([p.near_black, p.white])
    groups.append(["#000000", "#ffffff"])
    for group in groups:
        ok = [c for c in group if worst(c) >= p.min_contrast]
        if ok:
            best = max(ok, key=worst)
            return best, vs_mean(best)

    # Nothing is legible on the worst case (a zone spanning black to white): the best
    # worst case among the neutrals, among those that at least reach the target on the
    # zone's mean (pure black or white always does: >= 4.58:1 on any luminance).
    neutrals = [p.near_black, p.white, "#000000", "#ffffff"]
    on_mean = [c for c in neutrals if vs_mean(c) >= p.min_contrast] or neutrals
    best = max(on_mean, key=lambda c: (worst(c), vs_mean(c)))
    return best, vs_mean(best)


# ------------------------------------------------------------------------------------
# palette, tone, mood


def _palette(pyr: _Pyramid, p: AnalysisParams) -> list[ColourShare]:
    small = pyr.get(p.palette_size)
    colours = dominant_colours(small.reshape(-1, 3), p.n_colours, seed=p.seed, merge_delta_e=p.merge_delta_e,
                               min_share=p.min_colour_share, max_colours=8, max_samples=small.shape[0] * small.shape[1])
    return [ColourShare(hex=hx, share=round(s, 4)) for hx, s in colours]


def _tone(lab: np.ndarray, p: AnalysisParams) -> tuple[str, float]:
    t = math.radians(p.tone_axis_degrees)
    warmth = float((lab[..., 1] * math.cos(t) + lab[..., 2] * math.sin(t)).mean())
    if warmth > p.tone_neutral_threshold:
        return "warm", warmth
    if warmth < -p.tone_neutral_threshold:
        return "cool", warmth
    return "neutral", warmth


def _mood(tone: str, brightness: float, chroma: float, contrast: float, p: AnalysisParams) -> list[str]:
    """A few mood words from a fixed rule table (ordered: light, temperature, colour, contrast)."""
    bright = brightness >= p.bright_threshold
    dark = brightness <= p.dark_threshold
    muted = chroma < p.muted_chroma
    vivid = chroma > p.vivid_chroma
    soft = contrast < p.low_contrast
    bold = contrast > p.high_contrast

    words: list[str] = []
    # light level
    if bright:
        words.append("bright")
    elif dark:
        words.append("dark")
    # temperature
    if tone != "neutral":
        words.append(tone)
    # colourfulness, read together with the light level and temperature
    if muted:
        if dark:
            words.append("premium")
        elif bright and soft:
            words.append("airy")
        words.append("minimal")
    elif vivid:
        words.append("vivid")
        words.append("dramatic" if dark else "playful")
    elif dark:
        words.append("dramatic")
    elif tone == "warm":
        words.append("inviting" if bright else "cozy")
    elif tone == "cool":
        words.append("fresh" if bright else "serene")
    else:
        words.append("natural")
    # contrast
    if bold:
        words.append("bold")
    elif soft and not vivid:
        words.append("calm")

    out: list[str] = []
    for w_ in words:
        if w_ not in out:
            out.append(w_)
    return out[:5] or ["balanced"]


# ------------------------------------------------------------------------------------
# entry point


def analyze_classical(
    image: Image.Image,
    product_mask: Image.Image | None = None,
    params: AnalysisParams | None = None,
) -> Analysis:
    """Analyse a (retouched) ad image; see the module docstring for what each field means.

    `product_mask` is the product's alpha (mode "L", same size as the image); pixels above
    127 are product. Without one (or with an empty one) the product is estimated from
    what a smooth studio background cannot explain. If nothing stands out, the product
    box is assumed to be the central 40% of the frame.
    """
    p = params or AnalysisParams()
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    H, W = rgb.shape[:2]
    pyr = _Pyramid(rgb)
    edge_rgb = pyr.get(p.edge_size)

    # --- product -------------------------------------------------------------------
    stats_rgb = pyr.get(p.stats_size)
    sh, sw = stats_rgb.shape[:2]
    box = None
    mask_small = None
    if product_mask is not None:
        if product_mask.size != (W, H):
            raise ValueError(f"product_mask is {product_mask.size[0]}x{product_mask.size[1]}, image is {W}x{H}")
        m = np.asarray(product_mask.convert("L"), dtype=np.uint8)
        box = _bbox(m > 127)
        if box is not None:
            mask_small = _resize_to(m, p.stats_size).astype(np.float32) / 255.0
    if box is None:
        est = _estimate_product(pyr, p)
        eh, ew = est.shape
        eb = _bbox(est)
        if eb is not None:
            box = _scale_box(eb, W / ew, H / eh, W, H)
            mask_small = cv2.resize(est.astype(np.float32), (sw, sh), interpolation=cv2.INTER_LINEAR)
        else:
            box = (round(W * 0.3), round(H * 0.3), max(round(W * 0.3) + 1, round(W * 0.7)), max(round(H * 0.3) + 1, round(H * 0.7)))
            mask_small = np.zeros((sh, sw), np.float32)
            bx = _scale_box(box, sw / W, sh / H, sw, sh)
            mask_small[bx[1] : bx[3], bx[0] : bx[2]] = 1.0
    product_box = Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3])

    # --- global statistics ---------------------------------------------------------
    lab = srgb_to_lab(stats_rgb.astype(np.float32) / 255.0)
    lum = relative_luminance(stats_rgb.astype(np.float32) / 255.0)
    brightness = float(np.clip(lum.mean(), 0.0, 1.0))
    tone, _warmth = _tone(lab, p)
    chroma = float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    contrast = float(lab[..., 0].std())
    mood = _mood(tone, brightness, chroma, contrast, p)
    main_colours = _palette(pyr, p)

    # Background hue: median a*, b* of the pixels that are not product.
    bg_sel = mask_small < 0.5
    if bg_sel.sum() < 16:
        bg_sel = np.ones_like(bg_sel)
    bg_ab = (float(np.median(lab[..., 1][bg_sel])), float(np.median(lab[..., 2][bg_sel])))

    # --- text zone -----------------------------------------------------------------
    grey = cv2.cvtColor(edge_rgb, cv2.COLOR_RGB2GRAY)
    edges = (cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), p.canny_low, p.canny_high) > 0).astype(np.uint8)
    greyf = grey.astype(np.float32)
    detail = np.abs(greyf - cv2.GaussianBlur(greyf, (0, 0), p.detail_sigma))
    zone = _choose_zone(
        W,
        H,
        box,
        cv2.integral(edges, sdepth=cv2.CV_32S),
        cv2.integral(detail, sdepth=cv2.CV_64F),
        edges.shape,
        mask_small,
        p,
    )

    zx0, zy0, zx1, zy1 = _scale_box(zone.box, sw / W, sh / H, sw, sh)
    text_colour, text_contrast = _choose_text_colour(stats_rgb[zy0:zy1, zx0:zx1], bg_ab, p)

    zb = zone.box
    return Analysis(
        width=W,
        height=H,
        tone=tone,
        brightness=round(brightness, 4),
        main_colours=main_colours,
        mood=mood,
        product_box=product_box,
        text_zone=TextZone(
            position=zone.position,
            box=Box(x0=zb[0], y0=zb[1], x1=zb[2], y1=zb[3]),
            busyness=round(zone.busyness, 4),
        ),
        text_colour=text_colour,
        text_contrast=round(float(np.clip(text_contrast, 1.0, 21.0)), 3),
        backend="classical",
    )
