"""Retouch a composite: edge blending, colour harmonisation, sharpening, global tone.

Steps, in order (each is skipped entirely when its strength is 0 / its factor is 1, and
with every step off the output equals the input byte for byte):

1. **Harmonise** (linear light, product only, weighted by the mask). The scene's
   illuminant is estimated as the mean linear colour of the background around the
   product (grey world). Its chromaticity (CIE xy) is limited to ``max_cast`` from D65,
   so a saturated backdrop (Christmas red) tints the product only a little, and scaled
   by ``harmonize``. The product is then chromatically adapted from D65 to that white
   with a Bradford transform (XYZ -> cone-like LMS, von Kries gains, back), one 3x3
   matrix in linear RGB. Optionally the product's luminance moves a little toward the
   scene's (``luminance_match``, an exponent on the luminance ratio, clamped to +-10%).
2. **Edge blend** (linear light). The band is every pixel within ``edge_band`` px of
   the mask's 50% contour (the mask dilated minus eroded). Inside the band the image is
   mixed with a Gaussian-blurred copy (``edge_blur`` sigma), most at the contour and
   fading to nothing at the band's border; pixels outside the band are not touched.
3. **Sharpen** (sRGB-encoded luma, product interior). Unsharp mask on Rec.709 luma,
   ``amount`` x (luma - blurred luma), with a soft ``sharpen_threshold`` in 8-bit
   levels so flat areas and noise are left alone; the luma change is added equally to
   R, G and B (no colour fringes). Weighted by the mask and faded out in the edge band
   so the blended edge is not re-sharpened.
4. **Tone** (whole image, one 256-entry curve per channel). ``brightness`` multiplies
   linear light (an exposure change: 1.05 = +0.07 EV). ``contrast`` scales sRGB-encoded
   values around the image's mean luma (as PIL's ImageEnhance.Contrast does), so the
   average tone is kept and a bright backdrop is not pushed to white. Values the curve
   would push past white (or below black) are rolled off with a soft shoulder (toe)
   starting at ``highlight_knee`` (``shadow_knee``): white stays 255, near-whites stay
   distinct, nothing turns into a flat clipped area. ``saturation`` (linear light,
   around luminance) is applied last.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .colour import SRGB8_TO_LINEAR, linear_to_srgb8, srgb8_to_linear
from .composite import cover_resize

VERSION = "1"


class RetouchParams(BaseModel):
    """Settings of the retouch step (Dagster run config / ADGEN_ env)."""

    model_config = ConfigDict(extra="forbid")

    edge_band: int = Field(3, ge=0, le=64, description="Half-width in px of the band around the product's outline that is blended (0 = off).")
    edge_blur: float = Field(0.8, ge=0.0, le=10.0, description="Gaussian sigma in px of the blur mixed into the edge band (0 = off).")
    harmonize: float = Field(
        0.3, ge=0.0, le=1.0, description="Strength of the chromatic adaptation of the product to the scene's light (0 = off, 1 = full)."
    )
    max_cast: float = Field(
        0.03, ge=0.0, le=0.2, description="Largest illuminant shift followed, as a CIE xy distance from D65 (keeps coloured backdrops from dyeing the product)."
    )
    luminance_match: float = Field(
        0.05, ge=0.0, le=1.0, description="Exponent pulling the product's mean luminance toward the scene's (0 = off; clamped to +-10%)."
    )
    sharpen_amount: float = Field(0.45, ge=0.0, le=5.0, description="Unsharp-mask amount on the product's luma (0 = off).")
    sharpen_radius: float = Field(1.2, gt=0.0, le=10.0, description="Unsharp-mask Gaussian sigma in px.")
    sharpen_threshold: float = Field(
        2.0, ge=0.0, le=64.0, description="Luma detail below this many 8-bit levels is not sharpened (soft threshold)."
    )
    brightness: float = Field(1.05, gt=0.0, le=4.0, description="Multiplier on linear light (exposure); 1 = unchanged.")
    contrast: float = Field(1.1, ge=0.0, le=4.0, description="Contrast of sRGB-encoded values around the image's mean luma; 1 = unchanged.")
    saturation: float = Field(1.0, ge=0.0, le=4.0, description="Saturation around luminance in linear light; 1 = unchanged.")
    highlight_knee: float = Field(
        0.9, ge=0.5, lt=1.0, description="sRGB level where highlights start rolling off when brightness/contrast would clip them."
    )
    shadow_knee: float = Field(
        0.05, gt=0.0, le=0.5, description="sRGB level where shadows start rolling off when contrast would clip them to black."
    )


# sRGB (linear) -> XYZ (D65) and the Bradford cone matrix.
_RGB2XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float64,
)
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]], dtype=np.float64)
_BRADFORD_INV = np.linalg.inv(_BRADFORD)
_D65_XYZ = _RGB2XYZ @ np.ones(3)  # the white of the sRGB primaries, so neutral -> identity
_D65_XY = _D65_XYZ[:2] / _D65_XYZ.sum()
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _xy_to_xyz(xy: np.ndarray) -> np.ndarray:
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def adaptation_matrix(illuminant_linear_rgb: np.ndarray, strength: float = 1.0, max_cast: float = 1.0) -> np.ndarray:
    """3x3 matrix (linear sRGB) adapting colours seen under D65 to the given illuminant.

    The illuminant's chromaticity is limited to `max_cast` (xy distance) from D65 and
    interpolated by `strength`; luminance is preserved for white.
    """
    xyz = _RGB2XYZ @ np.asarray(illuminant_linear_rgb, dtype=np.float64)
    total = float(xyz.sum())
    if total <= 1e-9 or strength <= 0:
        return np.eye(3)
    xy = xyz[:2] / total
    d = xy - _D65_XY
    dist = float(np.hypot(*d))
    if dist > max_cast > 0:
        d *= max_cast / dist
    elif max_cast <= 0:
        d[:] = 0
    target = _xy_to_xyz(_D65_XY + strength * d)
    source = _xy_to_xyz(_D65_XY)
    gains = (_BRADFORD @ target) / (_BRADFORD @ source)
    cat = _BRADFORD_INV @ np.diag(gains) @ _BRADFORD
    return _XYZ2RGB @ cat @ _RGB2XYZ


def _shoulder(x: np.ndarray, knee: float, top: float) -> np.ndarray:
    """Map [knee, top] smoothly onto [knee, 1]; identity below the knee.

    Exponential roll-off: slope 1 at the knee (no kink), still positive at the top, so
    near-whites stay distinct instead of piling up at 255.
    """
    if top <= 1.0 or knee >= top:
        return x
    r = (1.0 - knee) / (top - knee)  # in (0, 1): how much the span must shrink
    # g(u) = r (1 - e^(-c u)) / (1 - e^(-c)) with g'(0) = 1  <=>  c / (1 - e^(-c)) = 1 / r
    lo, hi = 1e-6, 60.0
    for _ in range(60):
        c = 0.5 * (lo + hi)
        if c / (1.0 - np.exp(-c)) < 1.0 / r:
            lo = c
        else:
            hi = c
    u = np.clip((x - knee) / (top - knee), 0.0, 1.0)
    rolled = knee + (top - knee) * r * (1.0 - np.exp(-c * u)) / (1.0 - np.exp(-c))
    return np.where(x > knee, rolled, x)


def tone_curve(mean_luma: float, p: RetouchParams) -> np.ndarray:
    """The 256-entry uint8 curve for brightness, contrast and the soft roll-offs.

    `mean_luma` is the image's mean Rec.709 luma of sRGB-encoded values in [0, 1]
    (before brightness); the contrast pivot is that mean after brightness.
    """
    codes = np.arange(256, dtype=np.float64) / 255.0
    lin = SRGB8_TO_LINEAR.astype(np.float64) * p.brightness

    def enc(v):  # sRGB encoding, extended above 1 with the same power law
        v = np.maximum(v, 0.0)
        return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)

    s = enc(lin)
    pivot_lin = float(np.interp(mean_luma, codes, SRGB8_TO_LINEAR)) * p.brightness
    pivot = float(enc(np.array(pivot_lin)))
    c = pivot + p.contrast * (s - pivot)
    c = _shoulder(c, p.highlight_knee, float(c[-1]))
    c = 1.0 - _shoulder(1.0 - c, 1.0 - p.shadow_knee, 1.0 - float(c[0]))
    return np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)


def _mean_luma(img: np.ndarray) -> float:
    means = np.array(cv2.mean(img)[:3], dtype=np.float64) / 255.0
    return float(means @ _LUMA.astype(np.float64))


def retouch(
    image: Image.Image, mask: Image.Image, background: Image.Image, params: RetouchParams | None = None
) -> Image.Image:
    """Retouch the composite `image` (RGB) given the placed product `mask` ("L", same size)
    and the product-free `background` (RGB; cover-resized like composite() does when its
    size differs). Returns an RGB image of the image's size."""
    p = params or RetouchParams()
    if image.size != mask.size:
        raise ValueError(f"retouch needs the image and its mask in one size; got {image.size} and {mask.size}")
    img = np.asarray(image.convert("RGB"), dtype=np.uint8)
    m8 = np.asarray(mask.convert("L"), dtype=np.uint8)
    out = img.copy()
    H, W = m8.shape

    do_harm = p.harmonize > 0 or p.luminance_match > 0
    do_edge = p.edge_band > 0 and p.edge_blur > 0
    do_sharp = p.sharpen_amount > 0
    bx, by, bw, bh = cv2.boundingRect(m8)  # box of the non-zero mask
    if bw > 0 and bh > 0 and (do_harm or do_edge or do_sharp):
        pad = int(p.edge_band + 3 * max(p.edge_blur, p.sharpen_radius) + 4)
        x0, x1 = max(0, bx - pad), min(W, bx + bw + pad)
        y0, y1 = max(0, by - pad), min(H, by + bh + pad)
        roi = img[y0:y1, x0:x1]
        a = m8[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255)
        lin = srgb8_to_linear(roi)
        touched = np.zeros(a.shape, dtype=bool)
        changed_lin = False

        # 1. harmonise toward the scene's light
        if do_harm:
            bg = cover_resize(background, W, H)  # as composite() did, if the sizes differ
            gx0, gx1 = max(0, bx - bw // 2), min(W, bx + bw + bw // 2)
            gy0, gy1 = max(0, by - bh // 2), min(H, by + bh + bh // 2)
            scene = srgb8_to_linear(bg[gy0:gy1:2, gx0:gx1:2]).reshape(-1, 3).mean(axis=0)
            M = adaptation_matrix(scene, p.harmonize, p.max_cast).astype(np.float32)
            wsum = float(a.sum())
            prod_mean = (lin * a[..., None]).reshape(-1, 3).sum(axis=0) / max(wsum, 1e-6)
            y_prod, y_scene = float(prod_mean @ _LUMA), float(scene @ _LUMA)
            gain = 1.0
            if p.luminance_match > 0 and y_prod > 1e-4 and y_scene > 1e-4:
                gain = float(np.clip((y_scene / y_prod) ** p.luminance_match, 1 / 1.1, 1.1))
            M = M * np.float32(gain)
            if not np.allclose(M, np.eye(3), atol=1e-6):
                adapted = (lin.reshape(-1, 3) @ M.T).reshape(lin.shape)
                lin = lin + a[..., None] * (adapted - lin)
                touched |= a > 0
                changed_lin = True

        # 2. edge blend on the band around the 50% contour
        band_w = np.zeros(a.shape, dtype=np.float32)
        if do_edge:
            inside = (m8[y0:y1, x0:x1] >= 128).astype(np.uint8)
            d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
            d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
            dist = np.where(inside > 0, d_in, d_out) - 0.5  # distance to the contour
            r = float(p.edge_band)
            band = dist <= r
            band_w = np.where(band, (1.0 - np.clip(dist / (r + 1.0), 0.0, 1.0)) ** 2, 0.0).astype(np.float32)
            blurred = cv2.GaussianBlur(lin, (0, 0), p.edge_blur, borderType=cv2.BORDER_REPLICATE)
            lin = lin + band_w[..., None] * (blurred - lin)
            touched |= band
            changed_lin = True

        # 3. sharpen the product's luma (sRGB-encoded), outside the edge band
        if do_sharp:
            enc = (linear_to_srgb8(lin) if changed_lin else roi).astype(np.float32) * np.float32(1 / 255)
            luma = enc @ _LUMA
            detail = luma - cv2.GaussianBlur(luma, (0, 0), p.sharpen_radius, borderType=cv2.BORDER_REPLICATE)
            t = p.sharpen_threshold / 255.0
            if t > 0:
                k = np.clip((np.abs(detail) - t) / t, 0.0, 1.0)
                detail = detail * (k * k * (3.0 - 2.0 * k))
            weight = a * (1.0 - band_w)
            delta = (np.float32(p.sharpen_amount) * detail * weight)[..., None]
            new = np.clip(np.round((enc + delta) * 255.0), 0, 255).astype(np.uint8)
            touched |= weight > 0
        else:
            new = linear_to_srgb8(lin)
        region = out[y0:y1, x0:x1]
        region[touched] = new[touched]

    # 4. global tone
    if p.brightness != 1.0 or p.contrast != 1.0:
        lut = tone_curve(_mean_luma(out), p)
        out = cv2.LUT(out, lut)
    if p.saturation != 1.0:
        lin = srgb8_to_linear(out)
        y = (lin @ _LUMA)[..., None]
        out = linear_to_srgb8(y + np.float32(p.saturation) * (lin - y))
    return Image.fromarray(np.ascontiguousarray(out), "RGB")
