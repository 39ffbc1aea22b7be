"""Pixels of the ad text: glyph masks, the price pill, blending, and a text colour that reaches the contrast.

All blending happens in float on a crop around the text block, so the rest of the canvas
keeps its exact bytes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .ad_fonts import font_runs, load_font
from .ad_params import DARK, LIGHT
from .colour import percentile_contrast


def draw_line(draw: ImageDraw.ImageDraw, x: float, baseline: float, text: str, size: int, chain) -> None:
    for path, s in font_runs(text, chain):
        f = load_font(path, size)
        draw.text((x, baseline), s, font=f, fill=255, anchor="ls")
        x += f.getlength(s)


def pill_mask(w: int, h: int) -> np.ndarray:
    """Anti-aliased pill (4x supersampled), float 0..1."""
    ss = 4
    im = Image.new("L", (w * ss, h * ss))
    ImageDraw.Draw(im).rounded_rectangle((0, 0, w * ss - 1, h * ss - 1), radius=h * ss // 2, fill=255)
    return np.asarray(im.reduce(ss), dtype=np.float32) / 255.0


def blend(canvas: np.ndarray, mask: np.ndarray, rgb, x0: int, y0: int, alpha: float = 1.0) -> None:
    """In place: canvas (float) <- rgb over canvas through mask (placed at x0, y0)."""
    x0c, y0c = max(0, x0), max(0, y0)
    sub = canvas[y0c : y0 + mask.shape[0], x0c : x0 + mask.shape[1]]
    m = mask[y0c - y0 : y0c - y0 + sub.shape[0], x0c - x0 : x0c - x0 + sub.shape[1]]
    sub += (np.asarray(rgb, np.float32)[None, None] - sub) * (m[..., None] * alpha)


def choose_text_colour(preferred: str, bg: np.ndarray, target: float) -> tuple[str, float]:
    c = percentile_contrast(preferred, bg)
    if c >= target:
        return preferred, c
    best_c, best = max((percentile_contrast(h, bg), h) for h in (DARK, LIGHT))
    return best, best_c
