"""Synthetic product photos with known alpha, for the cut-out tests and benchmark.

Each case is an object of a known shape, rendered with a supersampled (anti-aliased)
soft alpha, filled with a shaded and textured foreground, over a known simple
background (plain white, plain colour, vertical gradient, or white with a soft floor
shadow), composited as I = a F + (1 - a) B, with a little sensor noise and 8-bit
quantisation. Everything is deterministic (fixed seeds).

Used by `tests/test_segment.py` and `bench/segment_quality.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

SS = 4  # supersampling factor of the shape rasteriser


@dataclass
class SyntheticCase:
    name: str
    image: Image.Image  # RGB, 8-bit
    alpha: np.ndarray  # float32 HxW in [0, 1], the true alpha
    fg: np.ndarray  # float32 HxWx3, the true foreground colours
    bg: np.ndarray  # float32 HxWx3, the true background (shadow included)


# ---------------------------------------------------------------- shapes (binary at SS x)


def _canvas(h: int, w: int) -> np.ndarray:
    return np.zeros((h * SS, w * SS), np.uint8)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * SS)), int(round(y * SS))


def _ellipse(c: np.ndarray, cx, cy, rx, ry, angle=0.0, value=255) -> None:
    cv2.ellipse(c, _pt(cx, cy), _pt(rx, ry), angle, 0, 360, value, -1)


def _rrect(c: np.ndarray, x0, y0, x1, y1, r, value=255) -> None:
    cv2.rectangle(c, _pt(x0 + r, y0), _pt(x1 - r, y1), value, -1)
    cv2.rectangle(c, _pt(x0, y0 + r), _pt(x1, y1 - r), value, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(c, _pt(cx, cy), int(round(r * SS)), value, -1)


def _poly(c: np.ndarray, pts, value=255) -> None:
    cv2.fillPoly(c, [np.array([_pt(x, y) for x, y in pts], np.int32)], value)


def _line(c: np.ndarray, x0, y0, x1, y1, width, value=255) -> None:
    cv2.line(c, _pt(x0, y0), _pt(x1, y1), value, max(1, int(round(width * SS))))


def _arc(c: np.ndarray, cx, cy, rx, ry, start, end, width, value=255) -> None:
    cv2.ellipse(c, _pt(cx, cy), _pt(rx, ry), 0, start, end, value, max(1, int(round(width * SS))))


def _star(cx, cy, r_out, r_in, n=5, rot=-90.0):
    pts = []
    for k in range(2 * n):
        r = r_out if k % 2 == 0 else r_in
        t = np.deg2rad(rot + k * 180.0 / n)
        pts.append((cx + r * np.cos(t), cy + r * np.sin(t)))
    return pts


def _down(c: np.ndarray) -> np.ndarray:
    h, w = c.shape[0] // SS, c.shape[1] // SS
    return cv2.resize(c.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- foregrounds / backgrounds


def _shaded(h, w, colour, rng, *, box, texture="fabric", highlight=0.18, shade=0.22, edge_dist=None) -> np.ndarray:
    """Object colour field: base colour, directional shading across the object's box
    (or, given several boxes, across the nearest one), a specular highlight and a texture."""
    boxes = box if isinstance(box[0], (tuple, list)) else [box]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes], np.float32)
    near = np.argmin((xx[..., None] - centres[:, 0]) ** 2 + (yy[..., None] - centres[:, 1]) ** 2, axis=-1)
    x0, y0, x1, y1 = (np.asarray([b[i] for b in boxes], np.float32)[near] for i in range(4))
    u = np.clip((xx - x0) / np.maximum(x1 - x0, 1), 0, 1)
    v = np.clip((yy - y0) / np.maximum(y1 - y0, 1), 0, 1)
    light = 1.0 - shade * (0.6 * u + 0.4 * v) + 0.06 * np.cos(np.pi * u)
    if edge_dist is not None:  # curved surfaces darken towards the silhouette
        light = light * (1.0 - 0.1 * np.exp(-edge_dist / 5.0))
    f = np.asarray(colour, np.float32)[None, None, :] * light[..., None]
    if highlight:
        hx, hy = x0 + 0.3 * (x1 - x0), y0 + 0.3 * (y1 - y0)
        s = 0.12 * np.maximum(x1 - x0, y1 - y0)
        f += highlight * np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * s * s))[..., None]
    if texture == "fabric":
        n = rng.normal(0, 1, (h, w)).astype(np.float32)
        n = cv2.GaussianBlur(n, (0, 0), 0.8)
        f += 0.035 * n[..., None]
    elif texture == "stripes":
        f *= (1.0 - 0.12 * (np.sin(xx * 0.5 + yy * 0.2) > 0.6))[..., None]
    elif texture == "label":
        lx0, lx1 = x0 + 0.2 * (x1 - x0), x0 + 0.8 * (x1 - x0)
        ly0, ly1 = y0 + 0.35 * (y1 - y0), y0 + 0.7 * (y1 - y0)
        lab = (xx >= lx0) & (xx <= lx1) & (yy >= ly0) & (yy <= ly1)
        f[lab] = np.array([0.96, 0.95, 0.9], np.float32)
        for k in range(4):
            ty = ly0 + (k + 1) * (ly1 - ly0) / 5
            line = lab & (np.abs(yy - ty) < 1.2) & (xx < lx1 - (k % 2 + 1) * 0.1 * (lx1 - lx0))
            f[line] = np.array([0.15, 0.15, 0.18], np.float32)
    return np.clip(f, 0, 1)


def _background(h, w, kind, colour=(1.0, 1.0, 1.0), colour2=None) -> np.ndarray:
    c1 = np.asarray(colour, np.float32)
    if kind == "plain":
        return np.broadcast_to(c1, (h, w, 3)).copy()
    if kind == "vgradient":
        c2 = np.asarray(colour2, np.float32)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        return np.broadcast_to((1 - t) * c1 + t * c2, (h, w, 3)).copy()
    raise ValueError(kind)


def _floor_shadow(h, w, cx, base_y, half_w, depth=0.35, blur=7.0) -> np.ndarray:
    """Multiplicative soft floor shadow (1 = no shadow) under an object standing at base_y."""
    s = np.zeros((h, w), np.float32)
    cv2.ellipse(s, (int(cx), int(base_y)), (int(half_w), int(max(3, half_w * 0.18))), 0, 0, 360, 1.0, -1)
    s = cv2.GaussianBlur(s, (0, 0), blur)
    s = s / max(float(s.max()), 1e-6)
    return 1.0 - depth * s


# ---------------------------------------------------------------- the set


def _compose(name, alpha, fg, bg, rng, noise=1.0) -> SyntheticCase:
    a = alpha[..., None]
    img = a * fg + (1 - a) * bg
    img = img * 255.0 + rng.normal(0, noise, img.shape)
    img8 = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return SyntheticCase(name, Image.fromarray(img8, "RGB"), alpha.astype(np.float32), fg.astype(np.float32), bg.astype(np.float32))


NEAR_WHITE = (0.92, 0.92, 0.9)


def make_synthetic_set(size: int = 256, seed: int = 1234) -> list[SyntheticCase]:
    """The synthetic set: a dozen objects with known soft alpha over simple backgrounds.

    Shapes: ellipses, rounded rectangles, polygons (star, hexagon), rings with a hole,
    a mug with a handle loop, a bottle with thin parts, a grid of small objects, and a
    box that fills most of the frame. Foregrounds are shaded and textured, in several
    colours including near-white (on white). Backgrounds: plain white, plain colour,
    vertical gradient, and white with a soft floor shadow.
    """
    rng = np.random.default_rng(seed)
    S = size
    k = S / 256.0
    cases: list[SyntheticCase] = []

    def add(name, mask_ss, colour, bgk, box, texture="fabric", bg_colour=(1, 1, 1), bg_colour2=None, shadow=None, hw=None):
        h, w = hw or (S, S)
        alpha = _down(mask_ss)
        # near-white products as photographed: body about 215-240 of 255, a faint
        # highlight, darker towards the silhouette (a highlight as white as the backdrop
        # on the outline would be invisible to any method)
        white = min(colour) > 0.85
        dist = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        fg = _shaded(h, w, colour, rng, box=box, texture=texture, highlight=0.04 if white else 0.18,
                     shade=0.12 if white else 0.22, edge_dist=dist)
        bg = _background(h, w, bgk, bg_colour, bg_colour2)
        if shadow is not None:
            bg = bg * _floor_shadow(h, w, *shadow)[..., None]
        cases.append(_compose(name, alpha, fg, bg, rng))

    # 1. red ellipse on white
    c = _canvas(S, S)
    _ellipse(c, 128 * k, 130 * k, 80 * k, 60 * k, 20)
    add("ellipse_red_white", c, (0.8, 0.15, 0.12), "plain", (48 * k, 70 * k, 208 * k, 190 * k))

    # 2. blue rounded rectangle with a label on a vertical grey gradient
    c = _canvas(S, S)
    _rrect(c, 70 * k, 40 * k, 186 * k, 220 * k, 22 * k)
    add("rrect_blue_gradient", c, (0.15, 0.3, 0.75), "vgradient", (70 * k, 40 * k, 186 * k, 220 * k), texture="label",
        bg_colour=(0.97, 0.97, 0.97), bg_colour2=(0.78, 0.8, 0.83))

    # 3. yellow star on light blue
    c = _canvas(S, S)
    _poly(c, _star(128 * k, 134 * k, 100 * k, 45 * k))
    add("star_yellow_blue", c, (0.95, 0.8, 0.15), "plain", (28 * k, 34 * k, 228 * k, 234 * k), bg_colour=(0.82, 0.88, 0.96))

    # 4. dark grey ring (the hole shows the background) on white
    c = _canvas(S, S)
    _ellipse(c, 128 * k, 128 * k, 90 * k, 90 * k)
    _ellipse(c, 128 * k, 128 * k, 45 * k, 45 * k, value=0)
    add("ring_dark_white", c, (0.25, 0.25, 0.27), "plain", (38 * k, 38 * k, 218 * k, 218 * k))

    # 5. near-white mug with a handle loop, on white with a soft floor shadow
    c = _canvas(S, S)
    _rrect(c, 60 * k, 60 * k, 160 * k, 200 * k, 12 * k)
    _arc(c, 160 * k, 125 * k, 36 * k, 40 * k, -90, 90, 12 * k)
    add("mug_white_shadow", c, NEAR_WHITE, "plain", (60 * k, 60 * k, 196 * k, 200 * k), texture="none",
        shadow=(128 * k, 200 * k, 95 * k, 0.3, 6 * k))

    # 6. green bottle with a thin neck and a thin antenna on beige
    c = _canvas(S, S)
    _rrect(c, 90 * k, 110 * k, 166 * k, 230 * k, 16 * k)
    _rrect(c, 118 * k, 60 * k, 138 * k, 115 * k, 4 * k)
    _line(c, 128 * k, 62 * k, 170 * k, 18 * k, 3 * k)
    _line(c, 100 * k, 150 * k, 60 * k, 120 * k, 4 * k)
    add("bottle_thin_green_beige", c, (0.2, 0.55, 0.25), "plain", (60 * k, 18 * k, 170 * k, 230 * k), texture="stripes",
        bg_colour=(0.95, 0.9, 0.82))

    # 7. a grid of six near-white "bulbs" with dark pins, on white
    c = _canvas(S, S)
    boxes = []
    for row in range(2):
        for col in range(3):
            cx, cy = (50 + col * 78) * k, (62 + row * 118) * k
            boxes.append((cx - 32 * k, cy - 38 * k, cx + 32 * k, cy + 44 * k))
            _poly(c, [(cx - 32 * k, cy - 38 * k), (cx + 32 * k, cy - 38 * k), (cx + 14 * k, cy + 10 * k), (cx - 14 * k, cy + 10 * k)])
            _rrect(c, cx - 14 * k, cy + 5 * k, cx + 14 * k, cy + 32 * k, 3 * k)
            _rrect(c, cx - 12 * k, cy + 31 * k, cx - 6 * k, cy + 44 * k, 1.5 * k)
            _rrect(c, cx + 6 * k, cy + 31 * k, cx + 12 * k, cy + 44 * k, 1.5 * k)
    add("bulbs_white_white", c, NEAR_WHITE, "plain", boxes, texture="none")

    # 8. brown textured box that fills most of the frame, on white
    c = _canvas(S, S)
    _rrect(c, 9 * k, 12 * k, 247 * k, 244 * k, 10 * k)
    add("box_fill_brown_white", c, (0.55, 0.38, 0.22), "plain", (9 * k, 12 * k, 247 * k, 244 * k))

    # 9. near-white ellipse (a jar) on a vertical gradient, landscape frame
    H, W = int(round(200 * k)), int(round(300 * k))
    c = _canvas(H, W)
    _ellipse(c, 150 * k, 100 * k, 70 * k, 70 * k)
    _rrect(c, 105 * k, 20 * k, 195 * k, 60 * k, 8 * k)
    add("jar_white_gradient", c, NEAR_WHITE, "vgradient", (80 * k, 20 * k, 220 * k, 170 * k), texture="none",
        bg_colour=(1.0, 1.0, 1.0), bg_colour2=(0.86, 0.87, 0.88), hw=(H, W))

    # 10. black hexagon on white with a soft floor shadow
    c = _canvas(S, S)
    _poly(c, [(128 * k + 80 * k * np.cos(t), 120 * k + 80 * k * np.sin(t)) for t in np.deg2rad(np.arange(0, 360, 60) + 30)])
    add("hexagon_black_shadow", c, (0.08, 0.08, 0.09), "plain", (48 * k, 40 * k, 208 * k, 200 * k),
        shadow=(128 * k, 198 * k, 100 * k, 0.35, 7 * k))

    # 11. orange ring, thin, on a plain teal background, portrait frame
    H, W = int(round(300 * k)), int(round(220 * k))
    c = _canvas(H, W)
    _ellipse(c, 110 * k, 150 * k, 85 * k, 110 * k)
    _ellipse(c, 110 * k, 150 * k, 62 * k, 86 * k, value=0)
    add("ring_orange_teal", c, (0.95, 0.5, 0.1), "plain", (25 * k, 40 * k, 195 * k, 260 * k), bg_colour=(0.2, 0.55, 0.55), hw=(H, W))

    # 12. grey fabric bag with two handles (loops showing background), on white with a shadow
    c = _canvas(S, S)
    _rrect(c, 40 * k, 110 * k, 216 * k, 215 * k, 14 * k)
    _arc(c, 105 * k, 112 * k, 30 * k, 70 * k, 180, 360, 7 * k)
    _arc(c, 151 * k, 112 * k, 30 * k, 70 * k, 180, 360, 7 * k)
    add("bag_grey_shadow", c, (0.5, 0.5, 0.52), "plain", (40 * k, 40 * k, 216 * k, 215 * k),
        shadow=(128 * k, 214 * k, 110 * k, 0.3, 8 * k))
    return cases


def iou(alpha_pred: np.ndarray, alpha_true: np.ndarray) -> float:
    p, t = alpha_pred > 0.5, alpha_true > 0.5
    union = np.logical_or(p, t).sum()
    return float(np.logical_and(p, t).sum() / union) if union else 1.0


def mae(alpha_pred: np.ndarray, alpha_true: np.ndarray) -> float:
    return float(np.abs(alpha_pred.astype(np.float32) - alpha_true.astype(np.float32)).mean())
