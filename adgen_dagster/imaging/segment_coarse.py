"""The coarse product mask at work resolution: a robust fit of the studio background, then GrabCut.

A smooth (polynomial) backdrop fit in Lab says how far each pixel is from the background;
thresholds, hole and shadow rules and GrabCut turn that into a clean hard mask, which
`segment_matting` then refines at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from adgen_dagster.imaging.segment_matting import disk, local_fg_bg, project_alpha
from adgen_dagster.imaging.segment_params import SegmentParams


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


def fit_background(lab: np.ndarray, p: SegmentParams) -> tuple[np.ndarray, float, float]:
    """Robust smooth Lab surface from the border ring. Returns (model HxWx3, noise sigma,
    fraction of the ring explained by the model).

    The fit starts from the most uniform border segments and trims outliers, because
    the product may cover part of the ring. Smooth deviations that the surface cannot
    follow (a floor a little darker than the wall, soft shadows) are left to the
    shadow test in `coarse_mask`.
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
    closed = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, disk(rc), borderType=cv2.BORDER_CONSTANT, borderValue=0)
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
                    ring = (cv2.dilate(big, disk(2)) > 0) & (big == 0)
                    sub = np.ascontiguousarray(dE[y0:y1, x0:x1])
                    gx = cv2.Sobel(sub, cv2.CV_32F, 1, 0, ksize=3)
                    gy = cv2.Sobel(sub, cv2.CV_32F, 0, 1, ksize=3)
                    edge = np.sqrt(gx * gx + gy * gy)[ring] / 8.0
                    real = edge.size > 0 and (np.median(sub[ring]) > 2.5 * t_lo or np.median(edge) > p.hole_edge)
        fill[i] = not real
    filled = fill[lab]
    real = inside[lab] & ~filled
    bridges = (closed > 0) & (fg == 0) & (cv2.dilate(filled.astype(np.uint8), disk(rc + 1)) > 0)
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
    inner = cv2.erode(mask, disk(r), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    outer = cv2.dilate(mask, disk(r))
    ys, xs = np.nonzero((outer > 0) & (inner == 0))
    F, B, near = local_fg_bg(img, inner.astype(np.float32), 1.0 - outer.astype(np.float32), 2 * r, xs.astype(np.float32), ys.astype(np.float32))
    a, conf = project_alpha(img[ys, xs], F, B, p.confidence_low, p.confidence_high)
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
    core = cv2.erode(passable, disk(erode_r), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    n, lab = cv2.connectedComponents(core, connectivity=4)
    if n <= 1:
        return np.zeros((h, w), bool)
    reach = np.zeros(n, bool)
    reach[_touching_border(lab)] = True
    reach[0] = False
    flood = reach[lab].astype(np.uint8)
    flood = cv2.dilate(flood, disk(erode_r + 1)) & passable
    return (flood > 0) & shadow_like


def coarse_mask(small: np.ndarray, p: SegmentParams, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """Binary product mask (uint8 0/1) at work resolution, and the Lab distance map."""
    h, w = small.shape[:2]
    f = small.astype(np.float32) / 255.0
    f = cv2.GaussianBlur(f, (0, 0), 0.7)
    lab = cv2.cvtColor(f, cv2.COLOR_RGB2Lab)
    model, sigma, frac = fit_background(lab, p)
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
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, disk(1))
    if cand.sum() == 0:
        return cand, dE

    # Shadow-like regions: darker, same chroma, smooth, fading into the background.
    gx = cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1, ksize=3)
    grad0 = np.sqrt(gx * gx + gy * gy) / 8.0
    # roughness: what a small blur removes; ~0 on shadows however steep, high on edges and texture
    rough = cv2.dilate(np.abs(lab[..., 0] - cv2.GaussianBlur(lab[..., 0], (0, 0), 1.5)), disk(1))
    chroma_t = max(p.shadow_chroma, 2 * sigma)
    # shadows are soft at any image size, so their slope per pixel grows as the image shrinks
    g_t = p.shadow_gradient * 512.0 / max(h, w)
    smooth = (rough < p.shadow_roughness) & (cv2.dilate(grad0, disk(1)) < g_t)
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
    m[cv2.erode(strong.astype(np.uint8), disk(2)) > 0] = cv2.GC_FGD
    near = cv2.dilate(filled, disk(3)) > 0
    m[(~near) & (cand == 0)] = cv2.GC_BGD

    mask = grabcut(small, m, p, stats)
    mask = _snap(small, mask, p)
    mask = clean_mask(mask, dE, t_lo, t_hi, p)
    return mask, dE


def grabcut(small: np.ndarray, m: np.ndarray, p: SegmentParams, stats: dict) -> np.ndarray:
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


def clean_mask(mask: np.ndarray, dE: np.ndarray, t_lo: float, t_hi: float, p: SegmentParams) -> np.ndarray:
    """Drop specks and background blobs, fill holes that are not real."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disk(1))
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
