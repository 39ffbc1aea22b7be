"""The colour side of the analysis: a legible text colour, the palette, tone and mood words.

The text colour is judged on the worst part of the zone (luminance percentiles), not its
mean, so it stays legible over a gradient or a shadow.
"""

from __future__ import annotations

import math

import numpy as np

from .analysis_model import ColourShare
from .analysis_params import AnalysisParams
from .analyze_regions import Pyramid
from .colour import contrast_ratio, hex_luminance, lab_to_srgb, relative_luminance, rgb_to_hex
from .palette import dominant_colours


# ------------------------------------------------------------------------------------
# text colour


def _tint(a: float, b: float, lightness: float, max_chroma: float, min_chroma: float) -> str:
    c = math.hypot(a, b)
    target_c = min(max_chroma, max(c, min_chroma))
    s = target_c / c if c > 1e-6 else 0.0
    rgb = lab_to_srgb(np.array([lightness, a * s, b * s], np.float32)) * 255.0
    return rgb_to_hex(rgb)


def legible_text_colour(
    zone_rgb: np.ndarray, bg_ab: tuple[float, float], p: AnalysisParams
) -> tuple[str, float]:
    """(hex, contrast vs mean) of the most pleasant text colour legible on the worst part of the zone."""
    lum = relative_luminance(zone_rgb.reshape(-1, 3).astype(np.float32) / 255.0)
    lo = float(np.percentile(lum, p.worst_case_percentile))
    hi = float(np.percentile(lum, 100.0 - p.worst_case_percentile))
    mean = float(lum.mean())

    def worst(h: str) -> float:
        lc = hex_luminance(h)
        return min(contrast_ratio(lc, lo), contrast_ratio(lc, hi))

    def vs_mean(h: str) -> float:
        return contrast_ratio(hex_luminance(h), mean)

    groups: list[list[str]] = []
    a, b = bg_ab
    if p.prefer_tinted and math.hypot(a, b) >= p.tint_min_chroma:
        # The richest tint that is still legible: step the dark tint darker (and the
        # light one lighter) until it passes; each step is its own group so a lighter,
        # more colourful dark tint wins over a darker one.
        dark_ls = np.arange(p.dark_tint_lightness, 7.9, -6.0) if p.dark_tint_lightness >= 8 else [p.dark_tint_lightness]
        for i, dl in enumerate(dark_ls):
            ll = min(100.0, p.light_tint_lightness + 1.0 * i)
            groups.append(
                [
                    _tint(a, b, float(dl), p.dark_tint_max_chroma, p.tint_min_chroma),
                    _tint(a, b, ll, p.light_tint_max_chroma, 0.0),
                ]
            )
    groups.append([p.near_black, p.white])
    groups.append(["#000000", "#ffffff"])
    for group in groups:
        ok = [c for c in group if worst(c) >= p.min_contrast]
        if ok:
            best = max(ok, key=worst)
            return best, vs_mean(best)

    # Nothing is legible on the worst case (a zone spanning black to white): the best
    # worst case among the neutrals, among those that at least reach the target on the
    # zone's mean (pure black or white always does: >= 4.58:1 on any luminance).
    neutrals = [p.near_black, p.white, "#000000", "#ffffff"]
    on_mean = [c for c in neutrals if vs_mean(c) >= p.min_contrast] or neutrals
    best = max(on_mean, key=lambda c: (worst(c), vs_mean(c)))
    return best, vs_mean(best)


# ------------------------------------------------------------------------------------
# palette, tone, mood


def palette_of(pyr: Pyramid, p: AnalysisParams) -> list[ColourShare]:
    small = pyr.get(p.palette_size)
    colours = dominant_colours(small.reshape(-1, 3), p.n_colours, seed=p.seed, merge_delta_e=p.merge_delta_e,
                               min_share=p.min_colour_share, max_colours=8, max_samples=small.shape[0] * small.shape[1])
    return [ColourShare(hex=hx, share=round(s, 4)) for hx, s in colours]


def tone_of(lab: np.ndarray, p: AnalysisParams) -> tuple[str, float]:
    t = math.radians(p.tone_axis_degrees)
    warmth = float((lab[..., 1] * math.cos(t) + lab[..., 2] * math.sin(t)).mean())
    if warmth > p.tone_neutral_threshold:
        return "warm", warmth
    if warmth < -p.tone_neutral_threshold:
        return "cool", warmth
    return "neutral", warmth


def mood_words(tone: str, brightness: float, chroma: float, contrast: float, p: AnalysisParams) -> list[str]:
    """A few mood words from a fixed rule table (ordered: light, temperature, colour, contrast)."""
    bright = brightness >= p.bright_threshold
    dark = brightness <= p.dark_threshold
    muted = chroma < p.muted_chroma
    vivid = chroma > p.vivid_chroma
    soft = contrast < p.low_contrast
    bold = contrast > p.high_contrast

    words: list[str] = []
    # light level
    if bright:
        words.append("bright")
    elif dark:
        words.append("dark")
    # temperature
    if tone != "neutral":
        words.append(tone)
    # colourfulness, read together with the light level and temperature
    if muted:
        if dark:
            words.append("premium")
        elif bright and soft:
            words.append("airy")
        words.append("minimal")
    elif vivid:
        words.append("vivid")
        words.append("dramatic" if dark else "playful")
    elif dark:
        words.append("dramatic")
    elif tone == "warm":
        words.append("inviting" if bright else "cozy")
    elif tone == "cool":
        words.append("fresh" if bright else "serene")
    else:
        words.append("natural")
    # contrast
    if bold:
        words.append("bold")
    elif soft and not vivid:
        words.append("calm")

    out: list[str] = []
    for w_ in words:
        if w_ not in out:
            out.append(w_)
    return out[:5] or ["balanced"]
