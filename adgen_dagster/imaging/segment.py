"""Classical CPU cut-out for e-commerce product photos (no model weights, no torch).

Target photos: a product on a plain or simple (gradient, vignette) studio background,
possibly with a soft floor shadow or a floor a little darker than the wall, including
white products on white and products that fill most of the frame.

1. **Background model** (work copy, 512 px long side): a smooth quadratic Lab surface
   fitted robustly to a ring along the border. The product may cover part of the ring:
   the fit starts from the most uniform border segments and trims outliers.
2. **Candidates and shadows**: pixels farther than a noise-scaled Lab distance from the
   model are product candidates. Candidates that are *shadow-like* (same chroma as the
   background, smooth: no edge or texture) and that a flood from the border reaches
   without crossing an edge are shadow (or floor), hence probable background. The
   flood runs on an eroded map so a thin gap in a white product's outline does not let
   it in, and nothing inside the convex hull of grouped product evidence (edges,
   texture, other hues, deep tones) can be shadow.
3. **GrabCut** (`cv2.grabCut`, mask init: definite / probable product and background
   from step 2, on the bounding box of the uncertain part) settles the rest with colour
   models and an edge-aware smoothness term.
4. **Boundary snap and clean-up** (work copy): within a few pixels of the boundary,
   pixels join the side the local colours say (I = a F + (1 - a) B with F, B the means
   of nearby interior / exterior pixels) where F and B differ clearly; this peels off
   reflections and floor. Specks are dropped and holes filled, except *real holes*
   (the loop of a bag handle): enclosed regions that match the background, are wide
   (not a letter stroke) and have a sharp outline (not a soft highlight on white).
5. **Alpha matting on a band** at full resolution: the mask is upsampled and, in a
   band a little wider than the upscaling error, alpha is solved from the compositing
   equation with local foreground / background colours ("known local background",
   exact on plain backgrounds); where those colours are too close to trust (white on
   white) a guided filter of the mask, guided by the image, takes over.
6. **Foreground colours** by blur fusion (Forte & Pitie 2021, `estimate_foreground`),
   so soft edge pixels carry no fringe of the old background.

RGBA input whose alpha is informative (not all 255 and not all 0) is trusted: that
alpha is the mask and only step 6 runs (a flat placeholder colour under fully
transparent pixels is first replaced by the nearby old-background colours).

Deterministic: `cv2.setRNGSeed` before GrabCut's k-means; everything else is exact.
About 0.4-0.6 s for a 1024 x 1024 photo on 2 cores, most of it GrabCut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging.segment_params import SegmentParams
from adgen_dagster.imaging.colour import srgb_to_lab

VERSION = "2"

__all__ = ["VERSION", "SegmentParams", "Cutout", "backdrop_fit", "classical_alpha", "cutout_classical", "cutout_from_alpha", "estimate_foreground",
           "has_informative_alpha", "split_input"]


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


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours of a matted image (blur fusion, Forte & Pitie 2021).

    `image`: float32 HxWx3 in [0, 1]; `alpha`: float32 HxW in [0, 1]. Returns float32
    HxWx3 foreground colours: equal to the image where alpha is 1, and where alpha is
    fractional the colour the object has without the old background mixed in, so a
    cut-out shows no fringe over a new background. (Where alpha is 0 the value is a
    smooth extension of nearby foreground colours.)

    Two passes of F = F_blur + a (I - a F_blur - (1 - a) B_blur), where F_blur and
    B_blur are alpha-weighted local means of the current foreground / background
    estimates: a 90 px box for a rough estimate, then a 6 px box for detail (the
    paper's sizes). The large pass is computed at reduced resolution (it is
    a wide blur anyway) and the update only on the pixels with fractional alpha.
    Independent of how alpha was obtained, so neural segmenters reuse it.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    a = np.clip(np.ascontiguousarray(alpha, dtype=np.float32), 0.0, 1.0)
    if img.ndim != 3 or img.shape[2] != 3 or a.shape != img.shape[:2]:
        raise ValueError(f"estimate_foreground: image must be HxWx3 and alpha HxW, got {img.shape} and {a.shape}")
    H, W = a.shape
    eps = 1e-5

    # pass 1: the 90 px box, computed at reduced resolution
    s = min(1.0, 256.0 / max(H, W))
    hs, ws = max(1, int(round(H * s))), max(1, int(round(W * s)))
    if (hs, ws) != (H, W):
        a_s = cv2.resize(a, (ws, hs), interpolation=cv2.INTER_AREA)
        i_s = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
    else:
        a_s, i_s = a, img
    ia_s = i_s * a_s[..., None]
    r = max(3, int(round(90 * s)))
    ba = cv2.blur(a_s, (r, r))[..., None]
    bF = cv2.blur(ia_s, (r, r)) / (ba + eps)
    bB = cv2.blur(i_s - ia_s, (r, r)) / ((1.0 - ba) + eps)
    if (hs, ws) != (H, W):
        bF = cv2.resize(bF, (W, H), interpolation=cv2.INTER_LINEAR)
        bB = cv2.resize(bB, (W, H), interpolation=cv2.INTER_LINEAR)
    # output: the image where alpha >= 0.5, the smooth foreground extension elsewhere
    # (invisible, but keeps naive resizing of the RGBA free of the old background)
    F1 = np.clip(bF, 0.0, 1.0)
    cv2.copyTo(img, (a >= 0.5).astype(np.uint8), F1)
    unknown = (a > 1e-3) & (a < 1.0 - 1e-3)
    if not unknown.any():
        return F1
    ys, xs = np.nonzero(unknown)
    y0, y1 = max(0, int(ys.min()) - 8), min(H, int(ys.max()) + 9)
    x0, x1 = max(0, int(xs.min()) - 8), min(W, int(xs.max()) + 9)
    idx = (ys - y0) * (x1 - x0) + (xs - x0)  # flat index into the crop

    def crop(x):
        return np.ascontiguousarray(x[y0:y1, x0:x1])

    def flat(x):
        return x.reshape(-1, x.shape[-1]) if x.ndim == 3 else x.reshape(-1)

    a_c, i_c, bF_c, bB_c, work = crop(a), crop(img), crop(bF), crop(bB), crop(F1)
    au = flat(a_c)[idx][:, None]
    iu = flat(i_c)[idx]
    bFu = flat(bF_c)[idx]
    flat(work)[idx] = np.clip(bFu + au * (iu - au * bFu - (1.0 - au) * flat(bB_c)[idx]), 0.0, 1.0)

    # pass 2: the 6 px box, full resolution, on the crop around the soft pixels
    r2 = 6
    a3 = cv2.merge([a_c, a_c, a_c])
    ba2 = flat(cv2.blur(a_c, (r2, r2)))[idx][:, None]
    bF2 = flat(cv2.blur(cv2.multiply(work, a3), (r2, r2)))[idx]
    bB2 = flat(cv2.blur(cv2.multiply(bB_c, 1.0 - a3), (r2, r2)))[idx]
    f_blur = bF2 / (ba2 + eps)
    b_blur = bB2 / ((1.0 - ba2) + eps)
    F1[ys, xs] = np.clip(f_blur + au * (iu - au * f_blur - (1.0 - au) * b_blur), 0.0, 1.0)
    return F1


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
        Ai = A[inl]
        coef = np.linalg.solve(Ai.T @ Ai + 1e-9 * np.eye(A.shape[1]), Ai.T @ vals[inl])
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
    step = max(1, len(ys) // 12000)  # a subsample is plenty for a smooth surface
    ys, xs = ys[::step], xs[::step]
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

    # evaluate the surface: c0 + c1 x + c2 y + c3 x^2 + c4 y^2 + c5 x y, separably
    c = np.zeros((6, 3))
    c[: coef.shape[0]] = coef
    x = np.linspace(-1.0, 1.0, w)[:, None]
    y = np.linspace(-1.0, 1.0, h)[:, None]
    row = (c[0] + c[2] * y + c[4] * y * y).astype(np.float32)  # h x 3
    col = (c[1] * x + c[3] * x * x).astype(np.float32)  # w x 3
    model = row[:, None, :] + col[None, :, :]
    if np.any(c[5] != 0):
        model += (y.astype(np.float32) * x.astype(np.float32).T)[..., None] * c[5].astype(np.float32)
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


def _real_holes(fg: np.ndarray, dE: np.ndarray, t_lo: float, p: SegmentParams) -> np.ndarray:
    """Fill the holes of the binary mask `fg`, except real ones. Returns uint8 0/1.

    Holes are looked for after a small closing, so that background-coloured parts of
    the product that touch the outline through a narrow gap (white letters printed up to
    the edge of a black strap) count as enclosed. A hole is *real* (kept: a handle loop)
    when it matches the background colour, is wide (not a letter stroke or a seam) and
    is bounded by a sharp edge (a soft highlight on a white product fades out instead);
    every other hole is filled.
    """
    h, w = fg.shape
    rc = max(1, p.bridge_px)
    closed = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _disk(rc), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    closed |= fg
    n, lab, st, _ = cv2.connectedComponentsWithStats((closed == 0).astype(np.uint8), connectivity=4)
    inside = np.ones(n, bool)
    inside[_touching_border(lab)] = False
    inside[0] = False  # label 0 is the (closed) foreground itself
    min_area = p.min_hole_area * h * w
    min_r = p.min_hole_width * max(h, w)
    dist = None
    fill = np.zeros(n, bool)
    for i in np.flatnonzero(inside):
        x, y, bw, bh, area = st[i]
        real = False
        if area >= min_area and min(bw, bh) >= 2 * min_r:
            sl = (slice(y, y + bh), slice(x, x + bw))
            reg = lab[sl] == i
            if np.median(dE[sl][reg]) < t_lo * 0.75:
                if dist is None:
                    dist = cv2.distanceTransform((closed == 0).astype(np.uint8), cv2.DIST_L2, 3)
                if dist[sl][reg].max() >= min_r:
                    ys, xs = np.nonzero(reg)
                    y0, y1 = max(0, y - 3), min(h, y + bh + 3)
                    x0, x1 = max(0, x - 3), min(w, x + bw + 3)
                    big = np.zeros((y1 - y0, x1 - x0), np.uint8)
                    big[ys + y - y0, xs + x - x0] = 1
                    ring = (cv2.dilate(big, _disk(2)) > 0) & (big == 0)
                    sub = np.ascontiguousarray(dE[y0:y1, x0:x1])
                    gx = cv2.Sobel(sub, cv2.CV_32F, 1, 0, ksize=3)
                    gy = cv2.Sobel(sub, cv2.CV_32F, 0, 1, ksize=3)
                    edge = np.sqrt(gx * gx + gy * gy)[ring] / 8.0
                    real = edge.size > 0 and (np.median(sub[ring]) > 2.5 * t_lo or np.median(edge) > p.hole_edge)
        fill[i] = not real
    filled = fill[lab]
    real = inside[lab] & ~filled
    bridges = (closed > 0) & (fg == 0) & (cv2.dilate(filled.astype(np.uint8), _disk(rc + 1)) > 0)
    # holes of fg itself that the closing swallowed (too small to matter) are filled too,
    # unless they are part of a real hole
    nf, lab_f = cv2.connectedComponents((fg == 0).astype(np.uint8), connectivity=4)
    enclosed = np.ones(nf, bool)
    enclosed[_touching_border(lab_f)] = False
    enclosed[np.unique(lab_f[real])] = False
    enclosed[0] = False
    return (fg.astype(bool) | filled | bridges | enclosed[lab_f]).astype(np.uint8)


def _snap(small: np.ndarray, mask: np.ndarray, p: SegmentParams) -> np.ndarray:
    """Move the mask boundary to where the colour says it is, within `snap_px`.

    In a band around the boundary, alpha is solved from the compositing equation with
    local foreground and background colours (means of nearby pixels well inside / well
    outside); where those colours differ clearly, the pixel joins the side alpha > 0.5
    says. This peels off reflections and floor left attached by GrabCut and adds missed
    rims; white-on-white edges (colours too close) and thin parts (no interior close
    enough to take the foreground colour from) are left as GrabCut had them."""
    r = p.snap_px
    if r <= 0 or not mask.any():
        return mask
    img = small.astype(np.float32) * (1.0 / 255.0)
    inner = cv2.erode(mask, _disk(r), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    outer = cv2.dilate(mask, _disk(r))
    ys, xs = np.nonzero((outer > 0) & (inner == 0))
    F, B, near = _fb_at(img, inner.astype(np.float32), 1.0 - outer.astype(np.float32), 2 * r, xs.astype(np.float32), ys.astype(np.float32))
    a, conf = _project(img[ys, xs], F, B, p.confidence_low, p.confidence_high)
    sure = (conf >= 1.0) & near  # thin parts have no interior nearby to compare with
    out = mask.copy()
    out[ys[sure], xs[sure]] = (a[sure] > 0.5).astype(np.uint8)
    return out


def _hulls(mask: np.ndarray, min_area: int, group_r: int) -> np.ndarray:
    """Filled convex hulls of groups of `mask` pieces: pieces larger than `min_area` that
    lie within 2 * `group_r` of each other form one group (the separate edges of one
    product's outline)."""
    h, w = mask.shape
    out = np.zeros((h, w), np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    keep = st[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    m = keep[lab].astype(np.uint8)
    if not m.any():
        return out
    near = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3) <= group_r
    _, glab = cv2.connectedComponents(near.astype(np.uint8), connectivity=8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    groups: dict[int, list[np.ndarray]] = {}
    for c in contours:
        x, y = c[0, 0]
        groups.setdefault(int(glab[y, x]), []).append(c.reshape(-1, 2))
    hulls = [cv2.convexHull(np.concatenate(g).astype(np.int32)) for g in groups.values()]
    cv2.fillPoly(out, hulls, 1)
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
    grad0 = np.sqrt(gx * gx + gy * gy) / 8.0
    # roughness: what a small blur removes; ~0 on shadows however steep, high on edges and texture
    rough = cv2.dilate(np.abs(lab[..., 0] - cv2.GaussianBlur(lab[..., 0], (0, 0), 1.5)), _disk(1))
    chroma_t = max(p.shadow_chroma, 2 * sigma)
    # shadows are soft at any image size, so their slope per pixel grows as the image shrinks
    g_t = p.shadow_gradient * 512.0 / max(h, w)
    smooth = (rough < p.shadow_roughness) & (cv2.dilate(grad0, _disk(1)) < g_t)
    shadow_like = (cand > 0) & (np.abs(dL) < p.shadow_depth) & (dC < chroma_t) & smooth
    # Product evidence no shadow has: an edge or texture, another hue, or a deep tone.
    # Inside the convex hull of grouped evidence nothing is called shadow, so a white
    # product whose outline is faint somewhere cannot be flooded as shadow.
    evidence = (cand > 0) & ((rough > p.edge_roughness) | (dC >= chroma_t) | (np.abs(dL) >= p.shadow_depth))
    hulls = _hulls(evidence, max(6, int(5e-5 * h * w)), max(2, int(round(p.hull_group * max(h, w)))))
    shadow = _shadows(shadow_like, cand == 0, p.shadow_erode) & (hulls == 0)
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
    mask = _snap(small, mask, p)
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
    stats["grabcut"] = f"{x1 - x0}x{y1 - y0}"
    img = np.ascontiguousarray(small[y0:y1, x0:x1, ::-1])
    seeds = sub
    g = min(1.0, p.grabcut_size / max(img.shape[:2])) if p.grabcut_size > 0 else 1.0
    if g < 1.0:  # GrabCut's cost grows with pixels: run it on a smaller copy of the box
        gs = (max(1, int(round(img.shape[1] * g))), max(1, int(round(img.shape[0] * g))))
        img = cv2.resize(img, gs, interpolation=cv2.INTER_AREA)
        sub = cv2.resize(sub, gs, interpolation=cv2.INTER_NEAREST)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(p.seed)
    cv2.grabCut(img, sub, None, bgd, fgd, p.grabcut_iters, cv2.GC_INIT_WITH_MASK)
    res = ((sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)).astype(np.float32)
    if g < 1.0:
        res = cv2.resize(res, (seeds.shape[1], seeds.shape[0]), interpolation=cv2.INTER_LINEAR)
    res = (res >= 0.5).astype(np.uint8)
    res[seeds == cv2.GC_FGD] = 1  # definite seeds stay what they were
    res[seeds == cv2.GC_BGD] = 0
    out = np.zeros_like(fgm)
    out[y0:y1, x0:x1] = res
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


def _local_mean(img: np.ndarray, w: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    ws = _box(w, r)
    m = _box(img * w[..., None], r) / np.maximum(ws, 1e-6)[..., None]
    return m, ws


def _fb_at(img: np.ndarray, w_fg: np.ndarray, w_bg: np.ndarray, r: int, fx: np.ndarray, fy: np.ndarray):
    """Local foreground / background colours at the points (fx, fy) (float pixel
    coordinates of `img`): means of the pixels weighted by `w_fg` / `w_bg` within radius
    r, or 4 r where there are none that close. Returns (F, B, near): two N x 3 arrays and
    whether both means came from within r."""
    out, near = [], np.ones(len(fx), bool)
    for w in (w_fg, w_bg):
        num = np.dstack([_box(img * w[..., None], r), _box(w, r)])
        v = _sample(num, fx, fy)
        low = v[:, 3] < 0.02
        if low.any():
            num = np.dstack([_box(img * w[..., None], 4 * r), _box(w, 4 * r)])
            v[low] = _sample(num, fx[low], fy[low])
            near &= ~low
        out.append(v[:, :3] / np.maximum(v[:, 3:], 1e-6))
    return out[0], out[1], near


def _project(I: np.ndarray, F: np.ndarray, B: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Alpha of pixels I (N x 3) from I = a F + (1 - a) B, and the confidence in it (0..1,
    from the distance between F and B: close colours make the solve unstable)."""
    d = F - B
    dd = np.einsum("ij,ij->i", d, d)
    a = np.clip(np.einsum("ij,ij->i", I - B, d) / np.maximum(dd, 1e-6), 0.0, 1.0)
    conf = np.clip((np.sqrt(dd) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return a, conf


def _sample(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of image x at float coordinates (N,) -> (N,) or (N, C)."""
    n = len(xs)
    cols = 1024
    rows = max(1, -(-n // cols))
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = xs, ys
    out = cv2.remap(x, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:n].squeeze(-1) if x.ndim == 2 else out.reshape(rows * cols, -1)[:n]


def _refine_alpha(img: np.ndarray, hard: np.ndarray, small: np.ndarray, coarse: np.ndarray, band_r: int, p: SegmentParams) -> np.ndarray:
    """Soft alpha at full resolution: `hard` (the upscaled coarse mask) outside a band of
    half-width `band_r` around its edge, a matte inside it.

    In the band, alpha comes from the compositing equation with local foreground and
    background colours; where those are too close to trust (white on white) from a
    guided filter of the mask, guided by the image. The smooth quantities (local colour
    means, guided-filter coefficients) are computed at work resolution and sampled
    bilinearly ("fast guided filter" style); only the band pixels are solved at full
    resolution.
    """
    H, W = hard.shape
    hs, ws = coarse.shape
    inner = cv2.erode(hard, _disk(band_r), borderType=cv2.BORDER_REPLICATE)
    outer = cv2.dilate(hard, _disk(band_r), borderType=cv2.BORDER_REPLICATE)
    band = outer > inner
    alpha = hard.astype(np.float32)
    if not band.any():
        return alpha
    sc = ws / W
    small_f = small.astype(np.float32) * (1.0 / 255.0)
    if (hs, ws) != (H, W):
        fin = cv2.resize(inner.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA)
        bout = cv2.resize(1.0 - outer.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA)
    else:
        fin, bout = inner.astype(np.float32), 1.0 - outer.astype(np.float32)
    r1 = max(1, int(round(max(p.matting_radius, band_r + 2) * sc)))

    # guided filter of the coarse mask (gray guide): coefficients at work resolution
    g_s = cv2.cvtColor(small_f, cv2.COLOR_RGB2GRAY)
    src = coarse.astype(np.float32)
    rg = max(1, int(round(band_r * sc)))
    mI, mP = _box(g_s, rg), _box(src, rg)
    ga = (_box(g_s * src, rg) - mI * mP) / (_box(g_s * g_s, rg) - mI * mI + p.guided_eps)
    gb = mP - ga * mI
    gab = cv2.merge([_box(ga, rg), _box(gb, rg)])

    ys, xs = np.nonzero(band)
    fx = (xs.astype(np.float32) + 0.5) * sc - 0.5
    fy = (ys.astype(np.float32) + 0.5) * sc - 0.5
    I = img[ys, xs]
    F, B, _ = _fb_at(small_f, fin, bout, r1, fx, fy)
    a_col, conf = _project(I, F, B, p.confidence_low, p.confidence_high)
    coef = _sample(gab, fx, fy)
    gray = I @ np.array([0.299, 0.587, 0.114], np.float32)
    a_gf = np.clip(coef[:, 0] * gray + coef[:, 1], 0.0, 1.0)
    a = conf * a_col + (1.0 - conf) * a_gf
    a[a < 0.02] = 0.0
    a[a > 0.98] = 1.0
    alpha[ys, xs] = a
    return alpha


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def backdrop_fit(rgb8: np.ndarray, p: SegmentParams) -> dict:
    """How plain the photo's border is, as the classical path's background model sees it:
    `bg_noise` (Lab units), `bg_border_fit` (fraction of the border ring the smooth model
    explains) and `bg_lightness` (Lab L of the model at the centre). Cheap (a 512 px copy)."""
    H, W = rgb8.shape[:2]
    s = min(1.0, p.work_size / max(H, W))
    small = cv2.resize(rgb8, (max(1, int(round(W * s))), max(1, int(round(H * s)))), interpolation=cv2.INTER_AREA)
    if min(small.shape[:2]) < 8:
        return {"bg_noise": float("inf"), "bg_border_fit": 0.0, "bg_lightness": 0.0}
    # numpy's Lab, not OpenCV's float one: that builds tables for 0.15 s on its first call in a process,
    # which is a tenth of `adgen cutout` on a photo that never runs the classical path (within 0.6 L*a*b* units).
    lab = srgb_to_lab(cv2.GaussianBlur(small.astype(np.float32) / 255.0, (0, 0), 0.7))
    model, sigma, frac = _fit_background(lab, p)
    h, w = model.shape[:2]
    return {"bg_noise": round(sigma, 3), "bg_border_fit": round(frac, 3), "bg_lightness": round(float(model[h // 2, w // 2, 0]), 2)}


def split_input(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 array and, when informative, the input's own alpha as float32 [0, 1]."""
    return _split_input(image)


def cutout_from_alpha(img: np.ndarray, alpha: np.ndarray, stats: dict) -> Cutout:
    """A Cutout from a photo (float32 HxWx3 in [0, 1]) and its alpha (any source): foreground
    colours re-estimated, so no fringe of the old background survives on a new one."""
    t = time.perf_counter()
    fg = estimate_foreground(img, alpha)
    stats.setdefault("timings_ms", {})["foreground_ms"] = round((time.perf_counter() - t) * 1000, 1)
    a8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    f8 = np.clip(fg * 255.0 + 0.5, 0, 255).astype(np.uint8)
    stats["coverage"] = round(float(alpha.mean()), 5)
    return Cutout(rgba=Image.fromarray(np.dstack([f8, a8]), "RGBA"), mask=Image.fromarray(a8, "L"), stats=stats)


def has_informative_alpha(image: Image.Image) -> bool:
    """Whether the image's own alpha is a mask (not all opaque, not all clear): then it is kept."""
    return _split_input(image)[1] is not None


def _split_input(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 array and, when informative, the input alpha as float32 [0, 1]."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        a = rgba[..., 3]
        informative = bool((a < 255).any() and (a > 0).any())
        return np.ascontiguousarray(rgba[..., :3]), (a.astype(np.float32) / 255.0 if informative else None)
    return np.asarray(image.convert("RGB")), None


def _fill_transparent(img: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA input often stores no colour under fully transparent pixels (all black, all
    white). Foreground estimation reads the old background there, so such a flat
    placeholder is replaced by the colours of the nearby partly transparent pixels
    (mostly old background), spread outwards. Real colours are left alone."""
    clear = alpha <= 0.0
    if not clear.any():
        return img
    vals = img[clear]
    if float(np.ptp(vals, axis=0).max()) > 2.0 / 255.0:
        return img  # the transparent area holds a real picture
    w = ((alpha > 0.0) & (alpha < 1.0)).astype(np.float32) * (1.0 - alpha)
    if not w.any():
        return img
    out = img.copy()
    fill = np.zeros_like(img)
    todo = clear.copy()
    for r in (4, 16, 64, 256):
        m, ws = _local_mean(img, w, r)
        ok = todo & (ws > 1e-4)
        fill[ok] = m[ok]
        todo &= ~ok
        if not todo.any():
            break
    if todo.any():
        fill[todo] = (img * w[..., None]).sum(axis=(0, 1)) / w.sum()
    out[clear] = fill[clear]
    return out


def classical_alpha(rgb8: np.ndarray, p: SegmentParams) -> tuple[np.ndarray, dict]:
    """Steps 1-5 of the module docstring on an RGB photo: (alpha float32 HxW, stats)."""
    stats: dict = {"version": VERSION, "source": "segmented"}
    timings: dict[str, float] = {}
    H, W = rgb8.shape[:2]
    t = time.perf_counter()
    s = min(1.0, p.work_size / max(H, W))
    ws, hs = max(1, int(round(W * s))), max(1, int(round(H * s)))
    small = cv2.resize(rgb8, (ws, hs), interpolation=cv2.INTER_AREA) if s < 1.0 else rgb8
    if min(hs, ws) < 8:
        stats["grabcut"] = "skipped"
        g = small.astype(np.float32)
        ref = np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]), axis=0)
        coarse = (np.abs(g - ref).max(axis=2) > 12).astype(np.uint8)
    else:
        stats["work_size"] = [ws, hs]
        coarse, _ = _coarse_mask(small, p, stats)
    timings["coarse_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    if (hs, ws) != (H, W):
        up = cv2.resize(coarse.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
        hard = (up >= 0.5).astype(np.uint8)
    else:
        hard = coarse
    band_r = int(np.ceil(1.0 / s)) + p.band_px
    img = rgb8.astype(np.float32) * (1.0 / 255.0)
    alpha = _refine_alpha(img, hard, small, coarse, band_r, p) if min(H, W) >= 8 else hard.astype(np.float32)
    timings["matting_ms"] = (time.perf_counter() - t) * 1000
    stats["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    return alpha, stats


def cutout_classical(image: Image.Image, params: SegmentParams | None = None) -> Cutout:
    """Cut the product out of a product photo (see the module docstring).

    RGB input is segmented. RGBA (LA, PA, or P with transparency) input whose alpha is
    informative (not all 255, and not all 0) keeps that alpha as the mask; foreground
    colours are still re-estimated from the RGB, so edges cut by a naive tool lose their
    fringe. An uninformative alpha is ignored and the RGB is segmented.
    """
    p = params or SegmentParams()
    t_start = time.perf_counter()
    rgb8, alpha_in = _split_input(image)
    img = rgb8.astype(np.float32) * (1.0 / 255.0)
    if alpha_in is not None:
        alpha, stats = alpha_in, {"version": VERSION, "source": "input_alpha", "timings_ms": {}}
        img = _fill_transparent(img, alpha)
    else:
        alpha, stats = classical_alpha(rgb8, p)
    cut = cutout_from_alpha(img, alpha, stats)
    stats["timings_ms"]["total_ms"] = round((time.perf_counter() - t_start) * 1000, 1)
    return cut
