"""Classical CPU cut-out for e-commerce product photos (no model weights, no torch).

Target photos: a product on a plain or simple (gradient, vignette) studio background,
possibly with a soft floor shadow, including white products on white. The pipeline:

1. **Background model** (work resolution, ~512 px long side): a smooth (quadratic)
   Lab colour surface fitted robustly to a ring along the image border. The ring may be
   partly covered by the product: the fit starts from the most uniform border segments
   and trims outliers, so only background pixels shape it.
2. **Seeds**: the Lab distance to that model marks candidate product pixels. Candidate
   regions that look like *shadow* (same chroma as the background, darker, smooth, and
   fading into the background instead of meeting it at an edge) become probable
   background; clearly different pixels become definite foreground.
3. **GrabCut** (`cv2.grabCut`, mask init, on the region of interest only) settles the
   uncertain pixels with colour models and an edge-aware smoothness term. Then small
   specks are dropped and holes are filled, except *real holes* (a bag handle loop):
   enclosed regions that match the background colour, are wide (not a letter stroke) and
   are bounded by a sharp edge.
4. **Alpha matting on a boundary band** (full resolution): the binary mask is
   upsampled and, in a band a few pixels wide around its edge, alpha is solved from the
   compositing equation with local foreground/background colours (a "known local
   background" matte, exact for plain backgrounds); where foreground and background
   colours are too close for that (white on white) a guided filter of the mask, guided
   by the image, takes over.
5. **Foreground colours** by blur fusion (Forte & Pitie 2021), so semi-transparent edge
   pixels carry no fringe of the old background.

RGBA input whose alpha is informative (some pixel neither fully opaque nor all pixels
fully transparent) is trusted: its alpha is the mask and only step 5 runs.

Everything is deterministic (`cv2.setRNGSeed` before GrabCut's k-means).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

VERSION = "1"

__all__ = ["VERSION", "SegmentParams", "Cutout", "cutout_classical", "estimate_foreground"]


class SegmentParams(BaseModel):
    """Parameters of the classical cut-out (defaults tuned on product photos)."""

    model_config = ConfigDict(extra="forbid")

    work_size: int = Field(512, ge=64, le=2048, description="Long side (px) of the working copy used for the coarse segmentation.")
    border_width: float = Field(0.02, gt=0, le=0.2, description="Width of the border ring sampled for the background model, as a fraction of the work long side.")
    bg_model: Literal["quadratic", "linear", "constant"] = Field(
        "quadratic", description="Shape of the background colour surface fitted to the border (quadratic covers gradients and vignettes)."
    )
    noise_floor: float = Field(0.8, gt=0, description="Smallest background noise level assumed (Lab units), so clean white backgrounds do not give hair-trigger thresholds.")
    fg_threshold: float = Field(3.0, gt=0, description="Lab distance to the background above which a pixel is a product candidate (raised automatically on noisy backgrounds).")
    strong_threshold: float = Field(12.0, gt=0, description="Lab distance above which a candidate is definite product (before erosion).")
    shadow_chroma: float = Field(4.0, ge=0, description="Largest chroma difference (Lab a/b) to the background for a darker pixel to count as shadow.")
    shadow_depth: float = Field(30.0, ge=0, description="Largest darkening (Lab L) a shadow can have; darker regions are product.")
    shadow_gradient: float = Field(1.5, gt=0, description="Largest lightness gradient (Lab L per work pixel) inside a shadow: shadows are smooth.")
    shadow_erode: int = Field(2, ge=0, le=16, description="Erosion radius (work px) that stops the shadow flood from leaking into a product through thin gaps in its outline.")
    grabcut_iters: int = Field(2, ge=0, le=10, description="GrabCut iterations (0 disables GrabCut and keeps the seeded mask).")
    min_component: float = Field(0.02, ge=0, le=1, description="Pieces smaller than this fraction of the largest piece are dropped unless clearly product-coloured.")
    min_hole_area: float = Field(0.0015, ge=0, le=1, description="Enclosed background-coloured regions smaller than this fraction of the image are filled.")
    min_hole_width: float = Field(0.012, ge=0, le=1, description="Enclosed regions narrower than this (inscribed radius, fraction of the work long side) are filled: letters, seams.")
    band_px: int = Field(2, ge=0, le=32, description="Extra half-width (full-resolution px) of the matting band beyond the upscaling factor.")
    matting_radius: int = Field(6, ge=1, le=64, description="Radius (full-resolution px) of the local foreground/background colour estimates in the band.")
    guided_eps: float = Field(2e-4, gt=0, description="Regulariser of the guided-filter fallback matte (image variance units, 0..1 scale).")
    confidence_low: float = Field(0.06, ge=0, description="Foreground/background colour distance (RGB 0..1) below which the colour matte is not trusted.")
    confidence_high: float = Field(0.18, gt=0, description="Colour distance above which the colour matte is fully trusted.")
    seed: int = Field(0, description="Seed of OpenCV's RNG (GrabCut's k-means) for deterministic output.")


@dataclass
class Cutout:
    """A cut-out product: `rgba` (original size, RGB = estimated foreground colours, A = soft
    alpha), `mask` (mode "L", the same alpha) and small JSON-able `stats`."""

    rgba: Image.Image
    mask: Image.Image
    stats: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Foreground estimation (also used by neural segmenters that only give alpha)
# --------------------------------------------------------------------------------------


def _blur_fusion(image: np.ndarray, F: np.ndarray, B: np.ndarray, alpha: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    a = alpha[..., None]
    k = (r, r)
    blurred_alpha = cv2.blur(alpha, k)[..., None]
    blurred_F = cv2.blur(F * a, k) / (blurred_alpha + 1e-5)
    blurred_B = cv2.blur(B * (1.0 - a), k) / ((1.0 - blurred_alpha) + 1e-5)
    F = blurred_F + a * (image - a * blurred_F - (1.0 - a) * blurred_B)
    return np.clip(F, 0.0, 1.0, out=F), blurred_B


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours of a matted image (blur fusion, Forte & Pitie 2021).

    `image`: float32 HxWx3 in [0, 1]; `alpha`: float32 HxW in [0, 1]. Returns float32
    HxWx3 foreground colours: equal to the image where alpha is 1, and on the soft edge
    the colour the product would have without the old background mixed in (so the
    cut-out shows no fringe over a new background). Two passes: a large radius for a
    rough estimate, then a small one for detail.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3 or a.shape != img.shape[:2]:
        raise ValueError(f"estimate_foreground: image must be HxWx3 and alpha HxW, got {img.shape} and {a.shape}")
    a = np.clip(a, 0.0, 1.0)
    big = max(3, min(90, int(round(max(img.shape[:2]) * 0.09))))
    F, blur_B = _blur_fusion(img, img, img, a, big)
    F, _ = _blur_fusion(img, F, blur_B, a, 6)
    return F


# --------------------------------------------------------------------------------------
# Background model
# --------------------------------------------------------------------------------------


def _design(xs: np.ndarray, ys: np.ndarray, kind: str) -> np.ndarray:
    cols = [np.ones_like(xs)]
    if kind != "constant":
        cols += [xs, ys]
    if kind not in ("constant", "linear"):
        cols += [xs * xs, ys * ys, xs * ys]
    return np.stack(cols, axis=1)


def _robust_fit(A: np.ndarray, vals: np.ndarray, init: np.ndarray, floor: float, iters: int = 4) -> tuple[np.ndarray, np.ndarray, float]:
    """Trimmed least squares of `vals` (N x 3) on design `A` starting from the constant
    `init`. Returns (coefficients, inlier mask, robust residual scale)."""
    resid = np.linalg.norm(vals - init, axis=1)
    scale = max(1.4826 * float(np.median(resid[resid <= np.percentile(resid, 50)])), floor)
    inl = resid < max(4.0 * scale, 2.5 * floor, 2.0)
    coef = np.zeros((A.shape[1], 3))
    coef[0] = init
    for _ in range(iters):
        if inl.sum() < max(8, 2 * A.shape[1], 0.1 * len(vals)):
            break
        c, *_ = np.linalg.lstsq(A[inl], vals[inl], rcond=None)
        coef = c
        resid = np.linalg.norm(vals - A @ coef, axis=1)
        scale = max(1.4826 * float(np.median(resid[inl])), floor)
        inl = resid < max(3.5 * scale, 2.0)
    return coef, inl, scale


def _fit_background(lab: np.ndarray, p: SegmentParams) -> tuple[np.ndarray, float, float]:
    """Robust smooth Lab surface from the border ring. Returns (model HxWx3, noise sigma,
    fraction of the ring explained by the model).

    The fit starts from the most uniform border segments and trims outliers, because
    the product may cover part of the ring. Smooth deviations that the surface cannot
    follow (a floor a little darker than the wall, soft shadows) are left to the
    shadow test in `_coarse_mask`.
    """
    h, w = lab.shape[:2]
    rw = max(1, int(round(p.border_width * max(h, w))))
    rw = min(rw, max(1, min(h, w) // 4))
    ring = np.zeros((h, w), bool)
    ring[:rw] = ring[-rw:] = True
    ring[:, :rw] = ring[:, -rw:] = True
    ys, xs = np.nonzero(ring)
    vals = lab[ys, xs].astype(np.float64)
    xn = xs / max(w - 1, 1) * 2.0 - 1.0
    yn = ys / max(h - 1, 1) * 2.0 - 1.0

    # Initial guess: border segments that are uniform are most likely background.
    nseg = 8
    sx = np.minimum((xs * nseg) // w, nseg - 1)
    sy = np.minimum((ys * nseg) // h, nseg - 1)
    seg_id = np.where(ys < rw, sx, np.where(ys >= h - rw, nseg + sx, np.where(xs < rw, 2 * nseg + sy, 3 * nseg + sy)))
    meds, spreads = [], []
    for s in range(4 * nseg):
        v = vals[seg_id == s]
        if len(v) < 4:
            continue
        m = np.median(v, axis=0)
        meds.append(m)
        spreads.append(np.median(np.linalg.norm(v - m, axis=1)))
    meds_a, spreads_a = np.array(meds), np.array(spreads)
    init = np.median(meds_a[spreads_a <= np.median(spreads_a) + 1e-6], axis=0)

    coef, inl, scale = _robust_fit(_design(xn, yn, p.bg_model), vals, init, p.noise_floor)

    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx = gx / max(w - 1, 1) * 2 - 1
    gy = gy / max(h - 1, 1) * 2 - 1
    basis = [np.ones_like(gx), gx, gy, gx * gx, gy * gy, gx * gy][: coef.shape[0]]
    model = np.zeros((h, w, 3), np.float32)
    for k, b in enumerate(basis):
        model += b[..., None] * coef[k].astype(np.float32)

    return model, float(scale), float(inl.mean())


# --------------------------------------------------------------------------------------
# Coarse segmentation at work resolution
# --------------------------------------------------------------------------------------


def _disk(r: int) -> np.ndarray:
    r = max(0, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _touching_border(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return ids


def _real_holes(fg: np.ndarray, dE: np.ndarray, t_lo: float, p: SegmentParams, protect: np.ndarray | None = None) -> np.ndarray:
    """Fill the holes of the binary mask `fg` except real ones (see module docstring).
    Returns the filled mask (uint8 0/1)."""
    h, w = fg.shape
    n, lab, st, _ = cv2.connectedComponentsWithStats((fg == 0).astype(np.uint8), connectivity=4)
    if n <= 1:
        return fg
    outside = np.zeros(n, bool)
    outside[_touching_border(lab)] = True
    outside[0] = True  # label 0 is the foreground itself
    out = fg.copy()
    min_area = p.min_hole_area * h * w
    min_r = p.min_hole_width * max(h, w)
    dist = None
    for i in range(1, n):
        if outside[i]:
            continue
        x, y, bw, bh, area = st[i]
        keep = False
        if area >= min_area and min(bw, bh) >= 2 * min_r:
            sl = (slice(y, y + bh), slice(x, x + bw))
            reg = lab[sl] == i
            vals = dE[sl][reg]
            if np.median(vals) < t_lo * 0.75:
                if dist is None:
                    dist = cv2.distanceTransform((fg == 0).astype(np.uint8), cv2.DIST_L2, 3)
                if dist[sl][reg].max() >= min_r:
                    # sharp boundary: the ring just outside the hole is clearly not background
                    reg8 = reg.astype(np.uint8)
                    ring = cv2.dilate(reg8, _disk(2)).astype(bool) & ~reg
                    rv = dE[sl][ring]
                    keep = rv.size > 0 and np.median(rv) > 2.5 * t_lo
        if not keep:
            out[lab == i] = 1
    return out


def _shadows(shadow_like: np.ndarray, bg_like: np.ndarray, erode_r: int) -> np.ndarray:
    """Shadow-like pixels that the open background reaches without crossing an edge.

    A flood from the border through background and shadow-like pixels, run on the
    passable region eroded by `erode_r` so that thin leaks (a gap in a white product's
    outline) do not let it into a product, then grown back by a little more than the
    erosion, inside the passable region.
    """
    h, w = shadow_like.shape
    if not shadow_like.any():
        return np.zeros((h, w), bool)
    passable = (shadow_like | bg_like).astype(np.uint8)
    core = cv2.erode(passable, _disk(erode_r), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    n, lab = cv2.connectedComponents(core, connectivity=4)
    if n <= 1:
        return np.zeros((h, w), bool)
    reach = np.zeros(n, bool)
    reach[_touching_border(lab)] = True
    reach[0] = False
    flood = reach[lab].astype(np.uint8)
    flood = cv2.dilate(flood, _disk(erode_r + 1)) & passable
    return (flood > 0) & shadow_like


def _coarse_mask(small: np.ndarray, p: SegmentParams, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """Binary product mask (uint8 0/1) at work resolution, and the Lab distance map."""
    h, w = small.shape[:2]
    f = small.astype(np.float32) / 255.0
    f = cv2.GaussianBlur(f, (0, 0), 0.7)
    lab = cv2.cvtColor(f, cv2.COLOR_RGB2Lab)
    model, sigma, frac = _fit_background(lab, p)
    diff = lab - model
    dL = diff[..., 0]
    dC = np.sqrt(diff[..., 1] ** 2 + diff[..., 2] ** 2)
    dE = np.sqrt(dL * dL + dC * dC)
    t_lo = max(p.fg_threshold, 3.5 * sigma)
    t_hi = max(p.strong_threshold, 2.5 * t_lo)
    mid = model[h // 2, w // 2]
    bg_rgb = cv2.cvtColor(mid.reshape(1, 1, 3), cv2.COLOR_Lab2RGB).reshape(3)
    stats.update(
        bg_colour="#{:02x}{:02x}{:02x}".format(*(int(round(float(np.clip(c, 0, 1)) * 255)) for c in bg_rgb)),
        bg_noise=round(sigma, 3),
        bg_border_fit=round(frac, 3),
        threshold=round(t_lo, 3),
    )

    cand = (dE > t_lo).astype(np.uint8)
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, _disk(1))
    if cand.sum() == 0:
        return cand, dE

    # Shadow-like regions: darker, same chroma, smooth, fading into the background.
    gx = cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1, ksize=3)
    grad = cv2.dilate(np.sqrt(gx * gx + gy * gy) / 8.0, _disk(1))
    shadow_like = (
        (cand > 0) & (np.abs(dL) < p.shadow_depth) & (dC < max(p.shadow_chroma, 2 * sigma)) & (grad < p.shadow_gradient)
    )
    shadow = _shadows(shadow_like, cand == 0, p.shadow_erode)
    stats["shadow_fraction"] = round(float(shadow.mean()), 4)

    fgc = (cand > 0) & ~shadow
    strong = (dE > t_hi) & fgc
    m = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    fg8 = fgc.astype(np.uint8)
    m[fg8 > 0] = cv2.GC_PR_FGD
    # enclosed background-coloured regions that are not real holes: probable product
    filled = _real_holes(fg8, dE, t_lo, p)
    m[(filled > 0) & (fg8 == 0)] = cv2.GC_PR_FGD
    m[cv2.erode(strong.astype(np.uint8), _disk(2)) > 0] = cv2.GC_FGD
    near = cv2.dilate(filled, _disk(3)) > 0
    m[(~near) & (cand == 0)] = cv2.GC_BGD

    mask = _grabcut(small, m, p, stats)
    mask = _clean(mask, dE, t_lo, t_hi, p)
    return mask, dE


def _grabcut(small: np.ndarray, m: np.ndarray, p: SegmentParams, stats: dict) -> np.ndarray:
    fgm = ((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)).astype(np.uint8)
    if p.grabcut_iters <= 0:
        return fgm
    unsure = m != cv2.GC_BGD
    ys, xs = np.nonzero(unsure)
    if len(ys) == 0:
        return fgm
    h, w = m.shape
    pad = 8
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    sub = m[y0:y1, x0:x1].copy()
    nb = int(((sub == cv2.GC_BGD) | (sub == cv2.GC_PR_BGD)).sum())
    nf = int(((sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)).sum())
    if nb < 64 or nf < 64:
        stats["grabcut"] = "skipped"
        return fgm
    img = np.ascontiguousarray(small[y0:y1, x0:x1, ::-1])
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(p.seed)
    cv2.grabCut(img, sub, None, bgd, fgd, p.grabcut_iters, cv2.GC_INIT_WITH_MASK)
    out = np.zeros_like(fgm)
    out[y0:y1, x0:x1] = ((sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)).astype(np.uint8)
    return out


def _clean(mask: np.ndarray, dE: np.ndarray, t_lo: float, t_hi: float, p: SegmentParams) -> np.ndarray:
    """Drop specks and background blobs, fill holes that are not real."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(1))
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    areas = st[1:, cv2.CC_STAT_AREA]
    big = areas.max()
    keep = np.zeros(n, bool)
    mean_dE = np.bincount(lab.ravel(), weights=dE.ravel(), minlength=n) / np.maximum(np.bincount(lab.ravel(), minlength=n), 1)
    h, w = mask.shape
    for i in range(1, n):
        a = st[i, cv2.CC_STAT_AREA]
        if a >= p.min_component * big:
            keep[i] = True
        elif a >= 1e-4 * h * w and mean_dE[i] > t_hi:
            keep[i] = True
    mask = keep[lab].astype(np.uint8)
    return _real_holes(mask, dE, t_lo, p)


# --------------------------------------------------------------------------------------
# Full-resolution alpha on the boundary band
# --------------------------------------------------------------------------------------


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _guided_gray(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    mI = _box(guide, r)
    mP = _box(src, r)
    cov = _box(guide * src, r) - mI * mP
    var = _box(guide * guide, r) - mI * mI
    a = cov / (var + eps)
    b = mP - a * mI
    return _box(a, r) * guide + _box(b, r)


def _local_mean(img: np.ndarray, w: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    ws = _box(w, r)
    m = _box(img * w[..., None], r) / np.maximum(ws, 1e-6)[..., None]
    return m, ws


def _refine_alpha(img: np.ndarray, hard: np.ndarray, band_r: int, p: SegmentParams) -> np.ndarray:
    """Soft alpha at full resolution: `hard` outside a band of half-width `band_r` around
    its edge, and a matte inside it."""
    H, W = hard.shape
    inner = cv2.erode(hard, _disk(band_r), borderType=cv2.BORDER_REPLICATE)
    outer = cv2.dilate(hard, _disk(band_r), borderType=cv2.BORDER_REPLICATE)
    band = outer > inner
    alpha = hard.astype(np.float32)
    if not band.any():
        return alpha
    ys, xs = np.nonzero(band)
    R = max(p.matting_radius, band_r) * 4 + 2
    y0, y1 = max(0, ys.min() - R), min(H, ys.max() + R + 1)
    x0, x1 = max(0, xs.min() - R), min(W, xs.max() + R + 1)
    I = img[y0:y1, x0:x1]
    fin = inner[y0:y1, x0:x1].astype(np.float32)
    bout = 1.0 - outer[y0:y1, x0:x1].astype(np.float32)
    bd = band[y0:y1, x0:x1]

    r1 = max(p.matting_radius, band_r + 2)
    F, wf = _local_mean(I, fin, r1)
    B, wb = _local_mean(I, bout, r1)
    F2, _ = _local_mean(I, fin, 4 * r1)
    B2, _ = _local_mean(I, bout, 4 * r1)
    F = np.where((wf < 0.02)[..., None], F2, F)
    B = np.where((wb < 0.02)[..., None], B2, B)
    d = F - B
    dd = np.sum(d * d, axis=2)
    a_col = np.sum((I - B) * d, axis=2) / np.maximum(dd, 1e-6)
    a_col = np.clip(a_col, 0.0, 1.0)

    gray = cv2.cvtColor(I, cv2.COLOR_RGB2GRAY)
    src = hard[y0:y1, x0:x1].astype(np.float32)
    a_gf = np.clip(_guided_gray(gray, src, max(1, band_r), p.guided_eps), 0.0, 1.0)

    conf = np.clip((np.sqrt(dd) - p.confidence_low) / max(p.confidence_high - p.confidence_low, 1e-6), 0.0, 1.0)
    a = conf * a_col + (1.0 - conf) * a_gf
    a[a < 0.02] = 0.0
    a[a > 0.98] = 1.0
    sub = alpha[y0:y1, x0:x1]
    sub[bd] = a[bd]
    return alpha


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def _split_input(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 array and, when informative, the input alpha as float32 [0, 1]."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        a = rgba[..., 3]
        informative = bool((a < 255).any() and (a > 0).any())
        return np.ascontiguousarray(rgba[..., :3]), (a.astype(np.float32) / 255.0 if informative else None)
    return np.asarray(image.convert("RGB")), None


def cutout_classical(image: Image.Image, params: SegmentParams | None = None) -> Cutout:
    """Cut the product out of a product photo (see the module docstring).

    RGB input is segmented. RGBA input whose alpha is informative (not all 255, and not
    all 0) keeps that alpha as the mask; foreground colours are still re-estimated.
    """
    p = params or SegmentParams()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    stats: dict = {"version": VERSION}
    rgb8, alpha_in = _split_input(image)
    H, W = rgb8.shape[:2]
    img = rgb8.astype(np.float32) * (1.0 / 255.0)

    t = time.perf_counter()
    if alpha_in is not None:
        alpha = alpha_in
        stats["source"] = "input_alpha"
    else:
        stats["source"] = "segmented"
        s = min(1.0, p.work_size / max(H, W))
        ws, hs = max(1, int(round(W * s))), max(1, int(round(H * s)))
        small = cv2.resize(rgb8, (ws, hs), interpolation=cv2.INTER_AREA) if s < 1.0 else rgb8
        if min(hs, ws) < 8:
            stats["grabcut"] = "skipped"
            g = small.astype(np.float32)
            ref = np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]), axis=0)
            coarse = (np.abs(g - ref).max(axis=2) > 12).astype(np.uint8)
        else:
            coarse, _ = _coarse_mask(small, p, stats)
        timings["coarse_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if (hs, ws) != (H, W):
            up = cv2.resize(coarse.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
            hard = (up >= 0.5).astype(np.uint8)
        else:
            hard = coarse
        band_r = int(np.ceil(1.0 / s)) + p.band_px
        alpha = _refine_alpha(img, hard, band_r, p) if min(H, W) >= 8 else hard.astype(np.float32)
        timings["matting_ms"] = (time.perf_counter() - t) * 1000

    t = time.perf_counter()
    fg = estimate_foreground(img, alpha)
    timings["foreground_ms"] = (time.perf_counter() - t) * 1000

    a8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    f8 = np.clip(fg * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([f8, a8]), "RGBA")
    mask = Image.fromarray(a8, "L")
    timings["total_ms"] = (time.perf_counter() - t_start) * 1000
    stats["coverage"] = round(float(alpha.mean()), 5)
    stats["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    return Cutout(rgba=rgba, mask=mask, stats=stats)
