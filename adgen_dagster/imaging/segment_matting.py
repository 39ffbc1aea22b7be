"""Matting: soft alpha on the boundary band at full resolution, and foreground colours without fringes.

The coarse mask is decided at work resolution; the edge is solved here from the
compositing equation with local foreground / background colours, and the foreground
colours are recovered by blur fusion so soft pixels carry none of the old background.
`estimate_foreground` also serves neural segmenters, which give alpha only.
"""

from __future__ import annotations

import cv2
import numpy as np

from adgen_dagster.imaging.segment_params import SegmentParams


# --------------------------------------------------------------------------------------
# Foreground estimation (also used by neural segmenters that only give alpha)
# --------------------------------------------------------------------------------------


def disk(r: int) -> np.ndarray:
    r = max(0, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


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
# Full-resolution alpha on the boundary band
# --------------------------------------------------------------------------------------


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def local_mean(img: np.ndarray, w: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    ws = _box(w, r)
    m = _box(img * w[..., None], r) / np.maximum(ws, 1e-6)[..., None]
    return m, ws


def local_fg_bg(img: np.ndarray, w_fg: np.ndarray, w_bg: np.ndarray, r: int, fx: np.ndarray, fy: np.ndarray):
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


def project_alpha(I: np.ndarray, F: np.ndarray, B: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
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


def refine_alpha(img: np.ndarray, hard: np.ndarray, small: np.ndarray, coarse: np.ndarray, band_r: int, p: SegmentParams) -> np.ndarray:
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
    inner = cv2.erode(hard, disk(band_r), borderType=cv2.BORDER_REPLICATE)
    outer = cv2.dilate(hard, disk(band_r), borderType=cv2.BORDER_REPLICATE)
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
    F, B, _ = local_fg_bg(small_f, fin, bout, r1, fx, fy)
    a_col, conf = project_alpha(I, F, B, p.confidence_low, p.confidence_high)
    coef = _sample(gab, fx, fy)
    gray = I @ np.array([0.299, 0.587, 0.114], np.float32)
    a_gf = np.clip(coef[:, 0] * gray + coef[:, 1], 0.0, 1.0)
    a = conf * a_col + (1.0 - conf) * a_gf
    a[a < 0.02] = 0.0
    a[a > 0.98] = 1.0
    alpha[ys, xs] = a
    return alpha
