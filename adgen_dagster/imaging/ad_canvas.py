"""The photo fitted into a canvas of another aspect ratio, and where on it the text may go.

The photo is never cropped: the studio background is extended into the extra area and
the text region is the analysis's zone (square), the added band (portrait) or the side
away from the product (landscape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from .ad_extend import extend
from .ad_params import AdParams
from .analysis_model import Analysis


def _resize(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    a = np.asarray(img)
    if (a.shape[1], a.shape[0]) == size:
        return a
    shrink = size[0] < a.shape[1]
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


@dataclass
class CanvasLayout:
    canvas: np.ndarray  # uint8 H x W x 3
    region: tuple[int, int, int, int]  # where the text block may go
    product: tuple[int, int, int, int]
    align: Literal["center", "left"]


def _map_box(b, sx: float, sy: float, ox: int, oy: int) -> tuple[int, int, int, int]:
    return (int(np.floor(b.x0 * sx + ox)), int(np.floor(b.y0 * sy + oy)),
            int(np.ceil(b.x1 * sx + ox)), int(np.ceil(b.y1 * sy + oy)))


def lay_out_canvas(img: Image.Image, analysis: Analysis, W: int, H: int, p: AdParams, cache: dict) -> CanvasLayout:
    iw, ih = img.size
    scale = min(W / iw, H / ih)
    sw, sh = min(W, max(1, round(iw * scale))), min(H, max(1, round(ih * scale)))
    if abs(sw - W) <= 1:
        sw = W
    if abs(sh - H) <= 1:
        sh = H
    if (sw, sh) not in cache:
        cache[(sw, sh)] = _resize(img, (sw, sh))
    arr = cache[(sw, sh)]
    sx, sy = sw / analysis.width, sh / analysis.height  # analysis pixels -> resized pixels
    gap = round(p.product_gap * (W * H) ** 0.5)
    pb = analysis.product_box
    pcx, pcy = (pb.x0 + pb.x1) / 2 / analysis.width, (pb.y0 + pb.y1) / 2 / analysis.height
    zone = analysis.text_zone

    align: Literal["center", "left"] = "center"
    if sh < H and (H - sh) >= 0.1 * H:  # taller canvas: a band above or below the photo
        E = H - sh
        side = zone.position if zone.position != "center" else ("bottom" if pcy < 0.5 else "top")
        band = min(E, max(round(E * 0.6), round(0.2 * H)))
        ox, oy = 0, (band if side == "top" else E - band)
        canvas = extend(arr, W, H, ox, oy)
        prod = _map_box(pb, sx, sy, ox, oy)
        zb = _map_box(zone.box, sx, sy, ox, oy)
        if side == "top":
            inner = prod[1] - gap
            if zone.position == "top":
                inner = min(inner, max(band, zb[3]))
            region = (0, 0, W, max(band, inner))
        else:
            inner = prod[3] + gap
            if zone.position == "bottom":
                inner = max(inner, min(oy + sh, zb[1]))
            region = (0, min(oy + sh, inner), W, H)
    elif sw < W and (W - sw) >= 0.1 * W:  # wider canvas: photo on the product's side
        E = W - sw
        side = "right" if pcx <= 0.5 else "left"  # side of the text
        ox, oy = (0 if side == "right" else E), 0
        canvas = extend(arr, W, H, ox, oy)
        prod = _map_box(pb, sx, sy, ox, oy)
        if side == "right":
            region = (min(ox + sw, prod[2] + gap), 0, W, H)
        else:
            region = (0, 0, max(E, prod[0] - gap), H)
        align = "left"
    else:  # same aspect (or nearly): text in the analysis's zone
        ox, oy = (W - sw) // 2, (H - sh) // 2
        canvas = extend(arr, W, H, ox, oy)
        prod = _map_box(pb, sx, sy, ox, oy)
        region = _avoid(_map_box(zone.box, sx, sy, ox, oy), prod, gap, zone.position)
    return CanvasLayout(canvas, region, prod, align)


def _avoid(region, prod, gap, position) -> tuple[int, int, int, int]:
    """Shrink a text region that overlaps the product (plus gap) to the free side."""
    x0, y0, x1, y1 = region
    if not (x0 < prod[2] + gap and prod[0] - gap < x1 and y0 < prod[3] + gap and prod[1] - gap < y1):
        return region
    above = (x0, y0, x1, min(y1, prod[1] - gap))
    below = (x0, max(y0, prod[3] + gap), x1, y1)
    if position == "top":
        return above
    if position == "bottom":
        return below
    return max(above, below, key=lambda r: r[3] - r[1])


def free_strips(W, H, prod, gap, m) -> list[tuple[int, int, int, int]]:
    return [
        (0, 0, W, prod[1] - gap + m),
        (0, prod[3] + gap - m, W, H),
        (0, 0, prod[0] - gap + m, H),
        (prod[2] + gap - m, 0, W, H),
    ]


def inset(region, W, H, m) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = region
    return max(x0, m), max(y0, m), min(x1, W - m), min(y1, H - m)
