"""The largest headline size whose block (headline, subline, price) fits a box.

A search over sizes on top of the line breaking: fewer lines and no lone last word are
worth a slightly smaller size; below the minimum size the text is ellipsized instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ad_layout import PILL_HEIGHT, PILL_PAD, PRICE_GAP, SUBLINE_GAP, line_px
from .ad_line_breaks import balance_lines, break_units, ellipsize_lines, wrap_units
from .ad_params import AdParams

MAX_FONT_SHORT = 0.14  # headline never larger than this fraction of the canvas's short side


@dataclass
class TextBlock:
    h_size: int
    h_lines: list[str]
    s_size: int = 0
    s_lines: list[str] = field(default_factory=list)
    p_size: int = 0
    price: str = ""
    width: int = 0
    height: int = 0
    balanced: dict[str, bool] = field(default_factory=dict)  # "head"/"sub": lines balanced, not greedy


def block_dims(b: TextBlock, measure, badge: bool) -> tuple[int, int]:
    w = max((measure(t, b.h_size, "head") for t in b.h_lines), default=0)
    h = len(b.h_lines) * line_px(b.h_size)
    if b.s_lines:
        h += round(b.h_size * SUBLINE_GAP) + len(b.s_lines) * line_px(b.s_size)
        w = max(w, max(measure(t, b.s_size, "sub") for t in b.s_lines))
    if b.price:
        pw, ph = _price_dims(b, measure, badge)
        h += round(b.h_size * PRICE_GAP) + ph
        w = max(w, pw)
    return int(np.ceil(w)), int(h)


def _price_dims(b: TextBlock, measure, badge: bool) -> tuple[int, int]:
    tw = measure(b.price, b.p_size, "price")
    if badge:
        return int(np.ceil(tw + 2 * PILL_PAD * b.p_size)), round(b.p_size * PILL_HEIGHT)
    return int(np.ceil(tw)), line_px(b.p_size)


def fit_block(headline: str, subline: str, price: str, box_w: int, box_h: int, p: AdParams, measure,
               max_px: int = 10_000) -> TextBlock:
    """Largest headline size whose block (headline, subline, price) fits box_w x box_h."""
    h_units, s_units = break_units(headline), break_units(subline)

    def sub_size(hs: int) -> int:
        return max(min(hs, max(16, round(p.min_font_px * 0.8))), round(hs * p.subline_scale))

    def price_size(hs: int) -> int:
        return max(min(hs, max(18, round(p.min_font_px * 0.8))), round(hs * p.price_scale))

    def attempt(hs: int, allow_break: bool, ellipsize: bool = False, balance: bool = True) -> TextBlock | None:
        mh = lambda t: measure(t, hs, "head")  # noqa: E731
        lines = wrap_units(h_units, box_w, mh, allow_break)
        if lines is None:
            return None
        balanced = False
        if len(lines) > p.max_headline_lines:
            if not ellipsize:
                return None
            lines = ellipsize_lines(lines, p.max_headline_lines, box_w, mh)
        elif balance:  # narrower lines only: never changes whether the block fits
            lines = balance_lines(h_units, box_w, mh, allow_break, lines)
            balanced = not allow_break
        b = TextBlock(hs, lines, price=price, balanced={"head": balanced})
        if s_units:
            b.s_size = sub_size(hs)
            ms = lambda t: measure(t, b.s_size, "sub")  # noqa: E731
            s_lines = wrap_units(s_units, box_w, ms, False)
            if s_lines is None:
                s_lines = wrap_units(s_units, box_w, ms, True)
            elif len(s_lines) <= p.max_subline_lines:
                s_lines = balance_lines(s_units, box_w, ms, False, s_lines)
                b.balanced["sub"] = True
            b.s_lines = ellipsize_lines(s_lines, p.max_subline_lines, box_w, ms)
        if price:
            b.p_size = price_size(hs)
        b.width, b.height = block_dims(b, measure, p.price_badge)
        if (b.height > box_h or b.width > box_w) and not ellipsize:
            return None
        return b

    def orphan(b: TextBlock) -> bool:
        """A last line much shorter than the others (a lone word) reads badly."""
        if len(b.h_lines) < 2:
            return False
        ws = [measure(t, b.h_size, "head") for t in b.h_lines]
        return ws[-1] < 0.4 * max(ws[:-1])

    lo0, hi0 = p.min_font_px, max(p.min_font_px, min(p.max_font_px, max_px))
    for allow_break in (False, True):
        if attempt(lo0, allow_break) is None:
            continue
        lo, hi = lo0, hi0
        while lo < hi:  # largest size that fits (fitting is monotonic in the size)
            mid = (lo + hi + 1) // 2
            if attempt(mid, allow_break, balance=False) is not None:
                lo = mid
            else:
                hi = mid - 1
        best = attempt(lo, allow_break)
        if len(best.h_lines) > 1 and not allow_break:
            # Up to 20% smaller text is worth one line less (fewer lines read faster) ...
            n = len(best.h_lines)
            a, z = max(lo0, -(-lo * 4 // 5)), lo - 1
            b = attempt(a, allow_break, balance=False) if a <= z else None
            if b is not None and len(b.h_lines) < n:
                while a < z:  # largest size with fewer lines (line count grows with the size)
                    mid = (a + z + 1) // 2
                    b = attempt(mid, allow_break, balance=False)
                    if b is not None and len(b.h_lines) < n:
                        a = mid
                    else:
                        z = mid - 1
                b = attempt(a, allow_break)
                if b is not None and not orphan(b):
                    return b
            # ... and up to 25% smaller is worth avoiding a lone last word.
            if orphan(best):
                for s in range(lo - 1, max(lo0, int(lo * 0.75)) - 1, -1):
                    b = attempt(s, allow_break)
                    if b is not None and not orphan(b):
                        return b
        return best
    # Nothing fits at the minimum size: ellipsize, then drop subline/lines until it fits.
    b = attempt(p.min_font_px, True, ellipsize=True)
    while b.height > box_h and (b.s_lines or len(b.h_lines) > 1):
        if b.s_lines:
            b.s_lines = b.s_lines[:-1]
        else:
            mh = lambda t: measure(t, b.h_size, "head")  # noqa: E731
            b.h_lines = ellipsize_lines(b.h_lines, len(b.h_lines) - 1, box_w, mh)
        b.width, b.height = block_dims(b, measure, p.price_badge)
    return b
