"""The placed text of one ad: where every line and the price sit, in CSS's line model.

One `AdLayout` drives both outputs, so they cannot drift: the PNG draws its glyphs at these
baselines, and the HTML page (`ad_html`) gives the browser the same text zone, font sizes,
line heights and gaps, and lets the browser place the lines. For that to land on the same
pixels, lines are placed here the way CSS places them:

- The block (headline, subline, price) is centred vertically in the text zone (`safe
  center`: a block taller than the zone starts at its top); lines are centred in the zone's
  width, or start at its left edge when left-aligned.
- Each line box is `line-height` tall; its baseline sits at half the leading plus the
  ascent, where ascent and descent are the font's `hhea` metrics (OS/2 typo metrics when the
  font asks for them) scaled and rounded to whole pixels, and the half leading is floored:
  what Chromium does (measured, see tests/test_ad_render.py).
- The price pill is an inline box as wide as the price plus 0.75 em each side, centred the
  same way; its text is centred on its ink, which the HTML reproduces with a relative
  offset (`PriceBox.shift`).

Text boxes (`TextLine.box`) are the advance width by ascent + descent, which is what
`Range.getClientRects()` reports for a line of text in the browser.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Literal

LINE_HEIGHT = 1.2  # line box, in em
SUBLINE_GAP = 0.3  # space above the subline, in headline em
PRICE_GAP = 0.45  # space above the price, in headline em
PILL_HEIGHT = 1.8  # price pill height, in price em
PILL_PAD = 0.75  # price pill padding left and right, in price em


def line_px(size: int) -> int:
    """Line box height for a font size (CSS `line-height` in whole pixels)."""
    return round(size * LINE_HEIGHT)


@lru_cache(maxsize=64)
def font_units(path: str) -> tuple[int, int, int]:
    """(units per em, ascender, descender > 0) of a TrueType/OpenType file or the first font of
    a collection, as a browser reads them: OS/2 typo metrics when USE_TYPO_METRICS is set,
    else hhea, else OS/2 win metrics. Pillow's built-in font: NanumSquare-like proportions."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return 1000, 850, 255
    try:
        base = struct.unpack(">I", data[12:16])[0] if data[:4] == b"ttcf" else 0
        n = struct.unpack(">H", data[base + 4 : base + 6])[0]
        tables = {}
        for i in range(n):
            tag, _, off, ln = struct.unpack(">4sIII", data[base + 12 + 16 * i : base + 28 + 16 * i])
            tables[tag] = data[off : off + ln]
        upem = struct.unpack(">H", tables[b"head"][18:20])[0]
        asc, desc = struct.unpack(">hh", tables[b"hhea"][4:8])
        os2 = tables.get(b"OS/2", b"")
        if len(os2) >= 78:
            fs_selection = struct.unpack(">H", os2[62:64])[0]
            t_asc, t_desc = struct.unpack(">hh", os2[68:72])
            w_asc, w_desc = struct.unpack(">HH", os2[74:78])
            if fs_selection & 0x80:
                asc, desc = t_asc, t_desc
            elif asc == 0 and desc == 0:
                asc, desc = w_asc, -w_desc
        return upem, asc, -desc
    except (struct.error, KeyError, IndexError):
        return 1000, 850, 255


def css_metrics(path: str, size: int) -> tuple[int, int]:
    """(ascent, descent) in whole pixels at `size` px, rounded half up as Chromium does."""
    upem, asc, desc = font_units(path)
    return math.floor(asc * size / upem + 0.5), math.floor(desc * size / upem + 0.5)


def baseline_in_line(path: str, size: int, line_height: int) -> int:
    """Baseline's offset from the top of a `line_height` px line box."""
    a, d = css_metrics(path, size)
    return (line_height - a - d) // 2 + a


@dataclass(frozen=True)
class TextLine:
    element: Literal["head", "sub", "price"]
    text: str
    x: float  # left edge of the advance box, canvas px
    baseline: int
    size: int
    width: float  # advance width
    font: str  # the element's first font: its metrics make the line box
    hang: float = 0.0  # width of a line-clamp "…" at its end: CSS centres the line without it

    @property
    def box(self) -> tuple[float, float, float, float]:
        """What the browser reports for the line's text (a line-clamp "…" is not text)."""
        a, d = css_metrics(self.font, self.size)
        return self.x, self.baseline - a, self.x + self.width - self.hang, self.baseline + d


@dataclass(frozen=True)
class PriceBox:
    x: float  # the pill (or, without a badge, the price line's advance box)
    y: int
    w: float
    h: int
    badge: bool
    shift: int  # baseline below CSS's baseline for this box (the HTML moves the text by it)


@dataclass
class AdLayout:
    """Everything both renderers need for one ad size. Canvas pixel coordinates throughout."""

    size_name: str
    width: int
    height: int
    zone: tuple[int, int, int, int]  # the text zone: the block is centred in it
    align: Literal["center", "left"]
    block_top: int
    head_size: int
    sub_size: int = 0
    price_size: int = 0
    lines: list[TextLine] = field(default_factory=list)  # headline, subline, then the price text
    price: PriceBox | None = None
    fonts: dict[str, list[str]] = field(default_factory=dict)  # element -> its fonts, first font first
    balanced: dict[str, bool] = field(default_factory=dict)  # element -> lines balanced (CSS text-wrap)
    colour: str = "#111111"  # text colour
    price_fill: str = ""  # pill colour (badge) ...
    price_ink: str = ""  # ... and the price text's colour

    def boxes(self, element: str) -> list[tuple[float, float, float, float]]:
        return [ln.box for ln in self.lines if ln.element == element]


def place_block(block, zone: tuple[int, int, int, int], align: str, chains: dict[str, tuple[str, ...]],
                measure: Callable[[str, int, str], float], badge: bool,
                price_ink_top: Callable[[str, int], float],
                clamped: frozenset[str] = frozenset()) -> tuple[int, list[TextLine], PriceBox | None]:
    """Lines and price of a fitted block (`ads._Block`) placed in the zone, CSS's way.

    `price_ink_top(text, size)`: how far the price's ink rises above its baseline (the pill
    centres the price on its ink). `clamped`: elements whose last line was ellipsized (the
    page clamps them with `line-clamp`, whose "…" hangs outside the centred line). Returns
    (block top, lines, price box)."""
    rx0, ry0, rx1, ry1 = zone
    box_w, box_h = rx1 - rx0, ry1 - ry0
    top = ry0 + max(0, (box_h - block.height) // 2)
    lines: list[TextLine] = []

    def x_of(w: float) -> float:
        return float(rx0) if align == "left" else rx0 + (box_w - w) / 2

    def add(element: str, texts: list[str], size: int, y: int) -> int:
        lh, font = line_px(size), chains[element][0]
        for i, t in enumerate(texts):
            w = measure(t, size, element)
            hang = measure("…", size, element) if element in clamped and i == len(texts) - 1 else 0.0
            lines.append(TextLine(element, t, x_of(w - hang), y + baseline_in_line(font, size, lh), size, w, font, hang))
            y += lh
        return y

    y = add("head", block.h_lines, block.h_size, top)
    if block.s_lines:
        y = add("sub", block.s_lines, block.s_size, y + round(block.h_size * SUBLINE_GAP))
    price = None
    if block.price:
        y += round(block.h_size * PRICE_GAP)
        ps, font = block.p_size, chains["price"][0]
        tw = measure(block.price, ps, "price")
        if badge:
            pw, ph = tw + 2 * PILL_PAD * ps, round(ps * PILL_HEIGHT)
            px = x_of(pw)
            base = round(y + ph / 2 + price_ink_top(block.price, ps) / 2)
            lines.append(TextLine("price", block.price, px + PILL_PAD * ps, base, ps, tw, font))
            price = PriceBox(px, y, pw, ph, True, base - y - baseline_in_line(font, ps, ph))
        else:
            y = add("price", [block.price], ps, y)
            ln = lines[-1]
            price = PriceBox(ln.x, y - line_px(ps), tw, line_px(ps), False, 0)
    return top, lines, price
