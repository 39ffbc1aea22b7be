"""Place a cut-out product on a background, with a ground contact shadow.

Colour maths
------------
Compositing is done in **linear light** with **premultiplied alpha**:

* the cut-out's sRGB colours are decoded to linear light and multiplied by alpha before
  any resampling, so transparent pixels (whatever colour the segmenter left in them)
  contribute nothing and a resized edge has no dark or white fringe;
* ``out = fg_premultiplied + background * shadow * (1 - alpha)``, all linear, then
  encoded back to sRGB once. A soft edge between red and blue therefore looks like a
  mix of the two lights (no dark seam, which is what mixing sRGB codes gives).

Shadows multiply the background in linear light (they remove light; they never add a
grey film): a tight *contact shadow* made from a squashed, blurred copy of the bottom of
the product's mask, centred on the product's base line, plus a very soft, wide *ambient
occlusion* made from the whole mask squashed flat.

Only the region around the product and its shadow is computed; every pixel outside it
is the (size-adjusted) background, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .colour import linear_to_srgb8, srgb8_to_linear

VERSION = "1"


class CompositeParams(BaseModel):
    """Settings of the compositing step (Dagster run config / ADGEN_ env)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(1024, ge=16, le=8192, description="Canvas width in pixels.")
    height: int = Field(1024, ge=16, le=8192, description="Canvas height in pixels.")
    placement: Literal["center", "bottom", "top"] = Field(
        "bottom", description="Where the product sits: 'bottom' stands it on the floor near the bottom margin; 'top'; 'center'."
    )
    margin: float = Field(
        0.08, ge=0.0, le=0.4, description="Free border around the product, as a fraction of the canvas's shorter side."
    )
    max_share: float = Field(
        0.62, gt=0.05, le=1.0, description="Largest share of the canvas width and of its height the product's box may take."
    )
    max_upscale: float = Field(
        3.0, ge=1.0, le=16.0, description="Largest enlargement of a small cut-out (more looks soft)."
    )
    alpha_threshold: float = Field(
        0.04, gt=0.0, lt=1.0, description="Alpha below this is ignored when finding the product's box (matting haze)."
    )
    shadow_opacity: float = Field(
        0.6, ge=0.0, le=1.0, description="Darkness of the contact shadow right under the product (0 = no contact shadow)."
    )
    shadow_blur: float = Field(
        0.025, ge=0.0, le=0.5, description="Softness of the contact shadow: Gaussian sigma as a fraction of the product's width."
    )
    shadow_source: float = Field(
        0.12, gt=0.0, le=1.0, description="How far above the product's base (fraction of its height) a part of its lower outline still counts as touching the floor and casts a contact shadow."
    )
    shadow_squash: float = Field(
        0.05, gt=0.0, le=1.0, description="Height of the contact shadow as a fraction of the product's height (flat = low)."
    )
    shadow_offset: float = Field(
        0.004, ge=-0.2, le=0.2, description="Vertical shift of the shadows as a fraction of the product's height (positive = lower)."
    )
    ambient_opacity: float = Field(
        0.28, ge=0.0, le=1.0, description="Darkness of the soft ambient occlusion around the base (0 = none)."
    )
    ambient_blur: float = Field(
        0.09, ge=0.0, le=1.0, description="Softness of the ambient occlusion: Gaussian sigma as a fraction of the product's width."
    )
    ambient_squash: float = Field(
        0.1, gt=0.0, le=1.0, description="Height of the ambient occlusion footprint as a fraction of the product's height."
    )


@dataclass
class Placed:
    image: Image.Image  # RGB composite, canvas size
    mask: Image.Image  # "L": the product's alpha as placed on the canvas
    box: tuple[int, int, int, int]  # product box on the canvas: x0, y0, x1, y1 (exclusive)
    scale: float  # cut-out pixels -> canvas pixels


# ----------------------------------------------------------------- sRGB <-> linear (fast)

def soft_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that stays fast for large sigmas (blur at reduced size, upsample)."""
    if sigma <= 0.3:
        return a
    k = max(1, int(sigma // 3))
    h, w = a.shape[:2]
    if k == 1 or min(h, w) // k < 4:
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(a, (max(1, -(-w // k)), max(1, -(-h // k))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ------------------------------------------------------------------------- helpers


def cover_resize(background: Image.Image, w: int, h: int) -> np.ndarray:
    """The background as uint8 RGB (h, w, 3): scaled to cover the canvas and centre-cropped."""
    bg = background.convert("RGB")
    if bg.size == (w, h):
        return np.asarray(bg, dtype=np.uint8).copy()
    bw, bh = bg.size
    s = max(w / bw, h / bh)
    cw, ch = w / s, h / s
    left, top = (bw - cw) / 2, (bh - ch) / 2
    out = bg.resize((w, h), Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch))
    return np.asarray(out, dtype=np.uint8).copy()


def _resize_premultiplied(rgba: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGBA -> (linear premultiplied RGB, alpha), float32, resized to size=(w, h)."""
    a = rgba[..., 3].astype(np.float32) * np.float32(1 / 255)
    prem = srgb8_to_linear(rgba[..., :3]) * a[..., None]
    stack = np.dstack([prem, a])
    h0, w0 = a.shape
    w, h = size
    if (w, h) != (w0, h0):
        interp = cv2.INTER_AREA if w < w0 and h < h0 else cv2.INTER_CUBIC
        stack = cv2.resize(stack, (w, h), interpolation=interp)
    alpha = np.clip(stack[..., 3], 0.0, 1.0)
    prem = np.clip(stack[..., :3], 0.0, None)
    prem = np.minimum(prem, alpha[..., None])  # a premultiplied colour never exceeds its alpha
    return prem, alpha


def _place_band(canvas: np.ndarray, band: np.ndarray, x0: int, y_centre: float) -> None:
    """Add `band` (h, w) into `canvas` with its left at x0, centred vertically on y_centre."""
    bh, bw = band.shape
    y0 = int(round(y_centre - bh / 2))
    H, W = canvas.shape
    sy0, sx0 = max(0, -y0), max(0, -x0)
    dy0, dx0 = max(0, y0), max(0, x0)
    dy1, dx1 = min(H, y0 + bh), min(W, x0 + bw)
    if dy1 <= dy0 or dx1 <= dx0:
        return
    canvas[dy0:dy1, dx0:dx1] = np.maximum(
        canvas[dy0:dy1, dx0:dx1], band[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    )


def _shadow_factor(alpha: np.ndarray, roi_shape: tuple[int, int], ox: int, base_y: float, p: CompositeParams) -> np.ndarray:
    """Multiplicative shadow (1 = no shadow) over an ROI; product alpha is (h, w) placed at ox in ROI coords."""
    h, w = alpha.shape
    factor = np.ones(roi_shape, dtype=np.float32)
    y = base_y + p.shadow_offset * h
    if p.shadow_opacity > 0:
        # Footprint: the lower envelope of the mask. Each column's lowest solid pixel is
        # where that part of the product meets the floor; columns whose lowest point is
        # well above the product's base (a bulb's body above its pins, a strap) are not
        # on the floor and cast nothing. Perspective bottoms (a bag seen from the side)
        # therefore get a shadow that follows their slanted base.
        solid = alpha[::-1] > 0.5
        has = solid.any(axis=0)
        col_base = (h - solid.argmax(axis=0)).astype(np.float32)  # exclusive bottom per column
        lift = np.float32(h) - col_base  # 0 at the product's base
        src = max(1.0, p.shadow_source * h)
        t = np.clip(lift / src, 0.0, 1.0)
        weight = np.where(has, 1.0 - t * t * (3.0 - 2.0 * t), 0.0).astype(np.float32)
        sh = max(2.0, p.shadow_squash * h)
        rows = np.arange(roi_shape[0], dtype=np.float32)[:, None]
        centre = (y - lift)[None, :]
        blob = np.clip(sh / 2 + 0.5 - np.abs(rows - centre), 0.0, 1.0) * weight[None, :]
        layer = np.zeros(roi_shape, dtype=np.float32)
        x1 = min(roi_shape[1], ox + w)
        layer[:, ox:x1] = blob[:, : x1 - ox]
        layer = soft_blur(layer, p.shadow_blur * w)
        factor *= 1.0 - np.float32(p.shadow_opacity) * np.clip(layer, 0.0, 1.0)
    if p.ambient_opacity > 0:
        ah = max(2, int(round(p.ambient_squash * h)))
        band = cv2.resize(alpha, (w, ah), interpolation=cv2.INTER_AREA)
        band = np.minimum(band * 2.0, 1.0)  # squashed coverage reads as a solid footprint
        layer = np.zeros(roi_shape, dtype=np.float32)
        _place_band(layer, band, ox, y)
        layer = soft_blur(layer, p.ambient_blur * w)
        factor *= 1.0 - np.float32(p.ambient_opacity) * np.clip(layer, 0.0, 1.0)
    return factor


# ------------------------------------------------------------------------- the step


def composite(cutout: Image.Image, background: Image.Image, params: CompositeParams | None = None) -> Placed:
    """Scale, place and shadow the cut-out (RGBA, soft alpha) on the background.

    The background is cover-resized (centre crop) to the canvas when its size differs.
    Raises ValueError when the cut-out's alpha is empty.
    """
    p = params or CompositeParams()
    W, H = p.width, p.height
    rgba = np.asarray(cutout.convert("RGBA"), dtype=np.uint8)
    alpha8 = rgba[..., 3]
    solid = (alpha8 > int(p.alpha_threshold * 255)).astype(np.uint8)
    count = cv2.countNonZero(solid)
    if count < 4:
        raise ValueError(
            f"cut-out has no product: only {count} pixel(s) of its {alpha8.shape[1]}x{alpha8.shape[0]} alpha "
            f"are above {p.alpha_threshold:g}; segmentation found nothing to place"
        )
    bx, by, bw, bh = cv2.boundingRect(solid)
    crop = rgba[by : by + bh, bx : bx + bw]
    ch, cw = crop.shape[:2]

    m = p.margin * min(W, H)
    s = min(p.max_share * W / cw, p.max_share * H / ch, (W - 2 * m) / cw, (H - 2 * m) / ch, p.max_upscale)
    pw, ph = max(1, int(round(cw * s))), max(1, int(round(ch * s)))
    pw, ph = min(pw, W), min(ph, H)
    x0 = (W - pw) // 2
    if p.placement == "bottom":
        y0 = int(round(H - m - ph))
    elif p.placement == "top":
        y0 = int(round(m))
    else:
        y0 = (H - ph) // 2
    y0 = min(max(y0, 0), H - ph)

    prem, alpha = _resize_premultiplied(crop, (pw, ph))
    bg = cover_resize(background, W, H)

    # Region of interest: the product plus everything its shadows can reach.
    reach = int(np.ceil(3 * max(p.shadow_blur, p.ambient_blur) * pw + max(p.shadow_squash, p.ambient_squash) * ph)) + 2
    base_y = y0 + ph
    rx0, rx1 = max(0, x0 - reach), min(W, x0 + pw + reach)
    ry0 = max(0, min(y0, int(base_y - reach)))
    ry1 = min(H, int(base_y + abs(p.shadow_offset) * ph + reach))
    ry1 = max(ry1, y0 + ph)
    roi_bg = bg[ry0:ry1, rx0:rx1]
    rh, rw = roi_bg.shape[:2]

    # Product layers in ROI coordinates.
    a_roi = np.zeros((rh, rw), dtype=np.float32)
    p_roi = np.zeros((rh, rw, 3), dtype=np.float32)
    px0, py0 = x0 - rx0, y0 - ry0
    a_roi[py0 : py0 + ph, px0 : px0 + pw] = alpha
    p_roi[py0 : py0 + ph, px0 : px0 + pw] = prem

    factor = _shadow_factor(alpha, (rh, rw), px0, base_y - ry0, p)
    bg_lin = srgb8_to_linear(roi_bg)
    out_lin = p_roi + bg_lin * (factor * (1.0 - a_roi))[..., None]
    out = linear_to_srgb8(out_lin)
    untouched = (a_roi <= 0.0) & (factor >= 1.0)
    out[untouched] = roi_bg[untouched]
    bg[ry0:ry1, rx0:rx1] = out

    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y0 : y0 + ph, x0 : x0 + pw] = np.round(alpha * 255.0).astype(np.uint8)
    return Placed(
        image=Image.fromarray(bg, "RGB"),
        mask=Image.fromarray(mask, "L"),
        box=(x0, y0, x0 + pw, y0 + ph),
        scale=float(pw / cw),
    )
