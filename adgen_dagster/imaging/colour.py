"""Colour maths shared by the stages: sRGB transfer, luminance, WCAG contrast, Lab.

Everything that mixes or compares colours goes through linear light here, so that
harmonisation, text-colour choice and palette extraction agree with each other and
with the WCAG definition of contrast.
"""

from __future__ import annotations

import numpy as np

# D65 sRGB -> XYZ
_M = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float32,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] to linear light."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB colours in [0, 1] (last axis = RGB)."""
    lin = srgb_to_linear(rgb)
    return lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722


def contrast_ratio(l1, l2):
    """WCAG 2 contrast ratio of relative luminances (order does not matter): a float for two
    numbers, an array when either is an array (one ratio per pixel)."""
    hi, lo = np.maximum(l1, l2), np.minimum(l1, l2)
    ratio = (hi + 0.05) / (lo + 0.05)
    return float(ratio) if np.ndim(ratio) == 0 else ratio


def hex_luminance(h: str) -> float:
    """WCAG relative luminance of a "#rrggbb" colour."""
    return float(relative_luminance(np.asarray(hex_to_rgb(h), np.float32) / 255.0))


def percentile_contrast(text_hex: str, bg_pixels: np.ndarray, pct: float = 1.0) -> float:
    """`pct`-th percentile of the per-pixel WCAG contrast between a text colour and (N, 3)
    sRGB pixels (0..255): the contrast that 100 - pct % of the pixels reach."""
    if bg_pixels.size == 0:
        return 21.0
    lb = relative_luminance(np.asarray(bg_pixels, np.float32).reshape(-1, 3) / 255.0)
    return float(np.percentile(contrast_ratio(lb, hex_luminance(text_hex)), pct))


def hex_to_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def rgb_to_hex(rgb) -> str:
    r, g, b = (int(round(float(c))) for c in rgb[:3])
    return "#{:02x}{:02x}{:02x}".format(*(min(255, max(0, c)) for c in (r, g, b)))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) to CIE Lab (D65)."""
    xyz = srgb_to_linear(rgb) @ _M.T / _WHITE
    eps = 216 / 24389
    f = np.where(xyz > eps, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1).astype(np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16) / 116
    fx = fy + lab[..., 1] / 500
    fz = fy - lab[..., 2] / 200
    eps = 216 / 24389
    kappa = 24389 / 27

    def finv(f):
        f3 = f**3
        return np.where(f3 > eps, f3, (116 * f - 16) / kappa)

    xyz = np.stack([finv(fx), finv(fy), finv(fz)], axis=-1) * _WHITE
    lin = xyz @ np.linalg.inv(_M).T.astype(np.float32)
    return linear_to_srgb(lin)


# --- 8-bit <-> linear by table lookup: exact round trips, fast on whole images ---------------

SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0).astype(np.float32)
_ENC_BITS = 16
_ENC_N = (1 << _ENC_BITS) - 1
# Linear [0, 1] quantised to 16 bits -> sRGB 8-bit code (rounded). 16 bits is fine enough
# that every 8-bit code survives a decode/encode round trip exactly.


def _encode_table() -> np.ndarray:
    x = np.arange(_ENC_N + 1, dtype=np.float64) / _ENC_N
    enc = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(enc * 255.0), 0, 255).astype(np.uint8)


_LINEAR16_TO_SRGB8 = _encode_table()


def srgb8_to_linear(a: np.ndarray) -> np.ndarray:
    """uint8 sRGB codes -> float32 linear light in [0, 1] (table lookup)."""
    return SRGB8_TO_LINEAR[a]


def linear_to_srgb8(x: np.ndarray) -> np.ndarray:
    """float linear light -> uint8 sRGB codes, clipped, rounded (table lookup)."""
    idx = np.clip(x * np.float32(_ENC_N) + np.float32(0.5), 0, _ENC_N).astype(np.uint16)
    return _LINEAR16_TO_SRGB8[idx]
