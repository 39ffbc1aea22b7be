"""Ad creatives: the retouched photo plus headline, subline and price, per marketplace size.

`render_ads(image, analysis, details, params)` returns one `AdCreative` per size: an RGB
PIL image of exactly that size (the caller encodes it as PNG), a standalone HTML page with
the same picture and live, editable text (`ad_html`), and the `AdLayout` both were drawn
from (`ad_layout`: lines placed by CSS's line model, so the browser puts them on the same
pixels).

Layout, per canvas:

- The (square) photo is *fitted* into the canvas, never cropped. When the canvas has a
  different aspect ratio, the studio background is extended into the extra area
  (`ad_extend`), without a seam.
- Square canvas: the text goes in the analysis's text zone (scaled).
- Portrait canvas (taller): the extension goes mostly to the analysis's text side
  (`top`/`bottom`; for `center`, the side further from the product) and the text block
  uses that band plus the free background of the photo up to the product.
- Landscape canvas (wider): the photo sits at one side (the product's side) and the text
  takes the other side plus the free background beside the product, lines left-aligned
  from the zone's left edge.

Text: headline = `details.display_headline`; if both headline and name are empty the
subline is promoted to headline, and if that is empty too `AdParams.fallback_headline`
("New arrival") is used. The headline size is the largest that fits the box within
`max_headline_lines` (lines balanced so the last one is not a lone word); Latin and
Hangul wrap at spaces (a word wider than the line breaks by characters, only when no
size down to `min_font_px` fits without it), CJK ideographs and kana break anywhere.
Below `min_font_px` nothing shrinks: the last line is ellipsized instead.

Fonts: the chain is `font_path` (if set), the shipped NanumSquare Bold/Regular (OFL, see
`adgen_dagster/fonts/README.md`), the system fonts in `SYSTEM_FONTS`, then Pillow's
built-in font. Each text element (headline, subline, price) is set in the first font of
the chain that has all its characters; only when none has, characters fall back one by
one. Coverage is checked by rendering the character and comparing it with the font's
`.notdef` glyph; a character no font covers is left out of the PNG (never drawn as a
box) but stays in the HTML.

Sizes: margins and the text/product gap are fractions of sqrt(W*H) (65 px and 38 px on
1080x1080); the headline is at most `max_font_px` and 14% of the short side; subline and
price scale with it.

Contrast: `AdCreative.contrast` is the **1st percentile of the per-pixel WCAG 2 contrast**
between the text colour and the background pixels under the glyphs (glyph mask dilated
by a few pixels, measured before the text is drawn and after any scrim): 99% of the
pixels under the text have at least that contrast. The analysis colour is kept when this
is >= `min_contrast`; otherwise near-black or white (whichever measures better); if
neither passes, a soft rounded scrim is blended behind the text with the smallest
opacity that passes. The price pill's own contrast (pill fill vs price text) is folded
in with `min`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .ad_extend import extend, to_u8
from .ad_html import ad_page
from .ad_layout import PILL_HEIGHT, PILL_PAD, PRICE_GAP, SUBLINE_GAP, AdLayout, line_px, place_block
from .analysis_model import Analysis
from .colour import contrast_ratio, hex_to_rgb, relative_luminance
from .details import ProductDetails

VERSION = "2"  # 2: live-text HTML, CSS line model for baselines, left-aligned blocks start at the zone edge

AD_SIZES: dict[str, tuple[int, int]] = {
    "1080x1080": (1080, 1080),
    "1080x1350": (1080, 1350),
    "1080x1920": (1080, 1920),
    "1200x628": (1200, 628),
}

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
SHIPPED_FONTS: dict[str, Path] = {
    "bold": FONT_DIR / "NanumSquareB.ttf",
    "regular": FONT_DIR / "NanumSquareR.ttf",
}
# Shipped second in the chain for what NanumSquare lacks (accented Latin, Greek, Cyrillic,
# €, ®), so prices and European names render the same on every machine.
SHIPPED_LATIN_FONTS: dict[str, Path] = {
    "bold": FONT_DIR / "NotoSans-Bold.ttf",
    "regular": FONT_DIR / "NotoSans-Regular.ttf",
}
# Tried in order after the shipped font, for characters it lacks (e.g. accented Latin,
# which NanumSquare does not have): Nanum Gothic first (closest look), then broad-coverage
# fonts of common Linux/macOS/Windows installs. Missing files are skipped.
SYSTEM_FONTS: dict[str, tuple[str, ...]] = {
    "bold": (
        "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
        "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
        "/System/Library/Fonts/AppleSDGothicNeo.ttc",
        "C:/Windows/Fonts/malgunbd.ttf",
        "C:/Windows/Fonts/arialbd.ttf",
    ),
    "regular": (
        "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
        "/System/Library/Fonts/AppleSDGothicNeo.ttc",
        "C:/Windows/Fonts/malgun.ttf",
        "C:/Windows/Fonts/arial.ttf",
    ),
}
BUILTIN_FONT = "<pillow-builtin>"  # ImageFont.load_default(size): ASCII only, always there

DARK = "#111111"
LIGHT = "#ffffff"
_SIZE_RE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


class AdParams(BaseModel):
    """How the ad creatives are laid out. Pixel sizes are on the output canvas."""

    model_config = ConfigDict(extra="forbid")

    sizes: str = Field(
        "1080x1080,1080x1350,1080x1920,1200x628",
        description="Comma-separated WIDTHxHEIGHT canvases to render (64..4096 px per side).",
    )
    max_headline_lines: int = Field(3, ge=1, le=8, description="Most lines the headline may wrap to.")
    max_subline_lines: int = Field(2, ge=1, le=6, description="Most lines the subline may wrap to.")
    min_font_px: int = Field(28, ge=8, le=200, description="Smallest headline size; below it the headline is ellipsized.")
    max_font_px: int = Field(104, ge=8, le=400, description="Largest headline size.")
    subline_scale: float = Field(0.5, ge=0.2, le=1.0, description="Subline size as a fraction of the headline size.")
    price_scale: float = Field(0.55, ge=0.2, le=1.0, description="Price size as a fraction of the headline size.")
    margin: float = Field(0.06, ge=0.0, le=0.25, description="Margin to the canvas edges, as a fraction of sqrt(width*height).")
    product_gap: float = Field(0.035, ge=0.0, le=0.25, description="Gap between text and product, as a fraction of sqrt(width*height).")
    font_path: str = Field("", description="TTF/OTF/TTC used first for all text; empty = the shipped NanumSquare.")
    price_badge: bool = Field(True, description="Draw the price in a rounded pill (False: a bold line).")
    min_contrast: float = Field(4.5, ge=1.0, le=21.0, description="WCAG contrast the text must reach (scrim added if needed).")
    fallback_headline: str = Field("New arrival", max_length=80, description="Headline when details have no headline, name or subline.")

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, v: str) -> str:
        names = [s.strip().lower() for s in v.split(",") if s.strip()]
        if not names:
            raise ValueError("sizes: give at least one WIDTHxHEIGHT")
        for n in names:
            m = _SIZE_RE.match(n)
            if not m or not all(64 <= int(g) <= 4096 for g in m.groups()):
                raise ValueError(f"sizes: {n!r} is not WIDTHxHEIGHT with 64..4096 px per side")
        return ",".join(dict.fromkeys(names))

    def size_list(self) -> list[tuple[str, tuple[int, int]]]:
        out = []
        for n in self.sizes.split(","):
            w, h = _SIZE_RE.match(n).groups()
            out.append((n, (int(w), int(h))))
        return out


@dataclass
class AdCreative:
    size_name: str  # "1080x1080"
    png: Image.Image  # RGB, exactly that size
    html: str  # standalone HTML page: the picture without text, the text live (see ad_html)
    text_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of everything drawn for the text
    text_colour: str  # "#rrggbb" of the headline/subline
    contrast: float  # see the module docstring: 1st-percentile per-pixel WCAG contrast
    scrim: bool = False  # whether a scrim was needed behind the text
    font_px: int = 0  # headline size used
    headline_lines: list[str] = field(default_factory=list)
    layout: AdLayout | None = None  # where every line is: drives both the PNG and the HTML


# --------------------------------------------------------------------------- fonts


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if path == BUILTIN_FONT:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size)


def _glyph_signature(font: ImageFont.FreeTypeFont, ch: str) -> tuple:
    bbox = font.getbbox(ch)
    w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    if w <= 0 or h <= 0:
        return (font.getlength(ch), bbox, b"")
    im = Image.new("L", (w, h))
    ImageDraw.Draw(im).text((-bbox[0], -bbox[1]), ch, font=font, fill=255)
    return (font.getlength(ch), bbox, im.tobytes())


@lru_cache(maxsize=64)
def _notdef(path: str) -> tuple:
    # U+FFFF is a noncharacter: no font maps it, so it renders as glyph 0 (.notdef).
    return _glyph_signature(_font(path, 48), "\uffff")


@lru_cache(maxsize=1 << 16)
def covers(path: str, ch: str) -> bool:
    """True when `path` has a real glyph for `ch` (its rendering differs from .notdef)."""
    if ch.isspace() or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
        return True
    sig = _glyph_signature(_font(path, 48), ch)
    return sig != _notdef(path) and sig[2] != b""


@lru_cache(maxsize=16)
def font_chain(weight: str, override: str = "") -> tuple[str, ...]:
    """Fonts tried in order for each character: override, shipped, system, built-in."""
    other = "regular" if weight == "bold" else "bold"
    chain: list[str] = []
    if override:
        p = Path(override).expanduser()
        if not p.is_file():
            raise ValueError(f"font_path {override!r} does not exist")
        try:
            ImageFont.truetype(str(p), 12)
        except OSError as exc:
            raise ValueError(f"font_path {override!r} is not a usable font ({exc})") from None
        chain.append(str(p))
    shipped = (SHIPPED_FONTS[weight], SHIPPED_LATIN_FONTS[weight], SHIPPED_FONTS[other], SHIPPED_LATIN_FONTS[other])
    for cand in (*shipped, *SYSTEM_FONTS[weight], *SYSTEM_FONTS[other]):
        if str(cand) not in chain and os.path.isfile(cand):
            chain.append(str(cand))
    chain.append(BUILTIN_FONT)
    return tuple(chain)


def _pick_font(chain: tuple[str, ...], ch: str) -> str | None:
    for p in chain:
        if covers(p, ch):
            return p
    return None


@lru_cache(maxsize=8192)
def _runs(text: str, chain: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Split text into (font path, substring) runs; characters no font has are dropped."""
    runs: list[tuple[str, str]] = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
            p = runs[-1][0] if runs else chain[0]
        else:
            p = _pick_font(chain, ch)
            if p is None:
                continue
        if runs and runs[-1][0] == p:
            runs[-1] = (p, runs[-1][1] + ch)
        else:
            runs.append((p, ch))
    return tuple(runs)


def chain_for(text: str, chain: tuple[str, ...]) -> tuple[str, ...]:
    """The chain with the first font that has every character of `text` moved to the front,
    so one text element is set in one typeface whenever possible (per-character fallback
    only when no single font covers it)."""
    chars = {c for c in text if not (c.isspace() or unicodedata.category(c) in ("Cf", "Mn", "Me"))}
    for i, path in enumerate(chain):
        if all(covers(path, c) for c in chars):
            return (path,) + chain[:i] + chain[i + 1 :]
    return chain


def renderable(text: str, chain: tuple[str, ...]) -> str:
    """The part of `text` some font in the chain can draw."""
    return "".join(s for _, s in _runs(text, chain))


class _Measurer:
    """Cached text widths for one render call."""

    def __init__(self, chains: dict[str, tuple[str, ...]]):  # element ("head"|"sub"|"price") -> chain
        self.chains = chains
        self._cache: dict[tuple[str, int, str], float] = {}

    def __call__(self, text: str, size: int, element: str) -> float:
        key = (text, size, element)
        w = self._cache.get(key)
        if w is None:
            w = sum(_font(p, size).getlength(s) for p, s in _runs(text, self.chains[element]))
            self._cache[key] = w
        return w


# --------------------------------------------------------------------------- text


def clean_text(s: str) -> str:
    """NFC (macOS gives decomposed Hangul), no control characters, single spaces; keeps newlines."""
    s = unicodedata.normalize("NFC", s or "")
    s = "".join(" " if (unicodedata.category(c) == "Cc" and c != "\n") else c for c in s)
    lines = [" ".join(part.split()) for part in s.split("\n")]
    return "\n".join(line for line in lines if line)


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x31F0 <= o <= 0x31FF
        or 0x3400 <= o <= 0x4DBF  # CJK ext A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified
        or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F  # CJK punctuation
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
        or 0x20000 <= o <= 0x2FFFF
    )


_NO_LINE_START = set(",.!?:;)]}%、。，．！？：；）］｝」』】〉》〕’”…・ー")
_NO_LINE_END = set("([{「『【〈《〔‘“")
_GLUE_TOKENS = set("—–-·|/&:;,.!?…)]}")

Unit = tuple[str, str]  # (separator before it: "" | " " | "\n", text)


def _units(text: str) -> list[Unit]:
    """Break opportunities: between words, and between CJK characters; never before closing
    punctuation or after opening punctuation; a lone dash/ampersand stays with the word before."""
    units: list[Unit] = []
    for pi, para in enumerate(text.split("\n")):
        for wi, word in enumerate(para.split(" ")):
            if not word:
                continue
            sep = ("\n" if pi and not wi else " ") if units else ""
            if units and sep == " " and all(c in _GLUE_TOKENS for c in word):
                units[-1] = (units[-1][0], units[-1][1] + " " + word)
                continue
            pieces: list[str] = []
            for ch in word:
                if pieces and (
                    not (_is_cjk(ch) or _is_cjk(pieces[-1][-1]))
                    or ch in _NO_LINE_START
                    or pieces[-1][-1] in _NO_LINE_END
                ):
                    pieces[-1] += ch
                else:
                    pieces.append(ch)
            units.append((sep, pieces[0]))
            units.extend(("", p) for p in pieces[1:])
    return units


def _graphemes(s: str) -> list[str]:
    out: list[str] = []
    for ch in s:
        if out and unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _wrap(units: list[Unit], width: float, measure: Callable[[str], float], allow_break: bool) -> list[str] | None:
    """Greedy wrap; None when a unit is wider than `width` and breaking it is not allowed.

    Line widths are summed from unit widths (kerning across a space is negligible); the
    caller checks the real widths of the lines it keeps."""
    space = measure(" ")
    lines: list[str] = []
    cur, cur_w = "", 0.0
    for sep, t in units:
        if sep == "\n" and cur:
            lines.append(cur)
            cur, cur_w = "", 0.0
        tw = measure(t)
        if cur:
            add = (space if sep == " " else 0.0) + tw
            if cur_w + add <= width:
                cur, cur_w = cur + (" " if sep == " " else "") + t, cur_w + add
                continue
            lines.append(cur)
            cur, cur_w = "", 0.0
        if tw <= width:
            cur, cur_w = t, tw
            continue
        if not allow_break:
            return None
        for g in _graphemes(t):
            gw = measure(g)
            if cur and cur_w + gw > width:
                lines.append(cur)
                cur, cur_w = g, gw
            else:
                cur, cur_w = cur + g, cur_w + gw
    if cur:
        lines.append(cur)
    return lines


def _balanced(units: list[Unit], width: float, measure, allow_break: bool, lines: list[str]) -> list[str]:
    """Narrowest wrap with the same number of lines (so the last line is not a lone word)."""
    n = len(lines)
    if n < 2 or allow_break:
        return lines
    lo, hi = max(1.0, width / n * 0.8), float(width)
    best = lines
    for _ in range(12):
        mid = (lo + hi) / 2
        cand = _wrap(units, mid, measure, False)
        if cand is not None and len(cand) <= n:
            best, hi = cand, mid
        else:
            lo = mid
        if hi - lo < 2:
            break
    return best


def _ellipsize(lines: list[str], n: int, width: float, measure) -> list[str]:
    """The first n lines, the last ending in "…" (cut back to fit): CSS `line-clamp`'s rule."""
    if len(lines) <= n:
        return lines
    gs = _graphemes(lines[n - 1])
    while gs and measure("".join(gs).rstrip() + "…") > width:
        gs.pop()
    return lines[: n - 1] + ["".join(gs).rstrip() + "…"]


# --------------------------------------------------------------------------- block layout

MAX_FONT_SHORT = 0.14  # headline never larger than this fraction of the canvas's short side


@dataclass
class _Block:
    h_size: int
    h_lines: list[str]
    s_size: int = 0
    s_lines: list[str] = field(default_factory=list)
    p_size: int = 0
    price: str = ""
    width: int = 0
    height: int = 0
    balanced: dict[str, bool] = field(default_factory=dict)  # "head"/"sub": lines balanced, not greedy


def _block_dims(b: _Block, measure, badge: bool) -> tuple[int, int]:
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


def _price_dims(b: _Block, measure, badge: bool) -> tuple[int, int]:
    tw = measure(b.price, b.p_size, "price")
    if badge:
        return int(np.ceil(tw + 2 * PILL_PAD * b.p_size)), round(b.p_size * PILL_HEIGHT)
    return int(np.ceil(tw)), line_px(b.p_size)


def _fit_block(headline: str, subline: str, price: str, box_w: int, box_h: int, p: AdParams, measure,
               max_px: int = 10_000) -> _Block:
    """Largest headline size whose block (headline, subline, price) fits box_w x box_h."""
    h_units, s_units = _units(headline), _units(subline)

    def sub_size(hs: int) -> int:
        return max(min(hs, max(16, round(p.min_font_px * 0.8))), round(hs * p.subline_scale))

    def price_size(hs: int) -> int:
        return max(min(hs, max(18, round(p.min_font_px * 0.8))), round(hs * p.price_scale))

    def attempt(hs: int, allow_break: bool, ellipsize: bool = False, balance: bool = True) -> _Block | None:
        mh = lambda t: measure(t, hs, "head")  # noqa: E731
        lines = _wrap(h_units, box_w, mh, allow_break)
        if lines is None:
            return None
        balanced = False
        if len(lines) > p.max_headline_lines:
            if not ellipsize:
                return None
            lines = _ellipsize(lines, p.max_headline_lines, box_w, mh)
        elif balance:  # narrower lines only: never changes whether the block fits
            lines = _balanced(h_units, box_w, mh, allow_break, lines)
            balanced = not allow_break
        b = _Block(hs, lines, price=price, balanced={"head": balanced})
        if s_units:
            b.s_size = sub_size(hs)
            ms = lambda t: measure(t, b.s_size, "sub")  # noqa: E731
            s_lines = _wrap(s_units, box_w, ms, False)
            if s_lines is None:
                s_lines = _wrap(s_units, box_w, ms, True)
            elif len(s_lines) <= p.max_subline_lines:
                s_lines = _balanced(s_units, box_w, ms, False, s_lines)
                b.balanced["sub"] = True
            b.s_lines = _ellipsize(s_lines, p.max_subline_lines, box_w, ms)
        if price:
            b.p_size = price_size(hs)
        b.width, b.height = _block_dims(b, measure, p.price_badge)
        if (b.height > box_h or b.width > box_w) and not ellipsize:
            return None
        return b

    def orphan(b: _Block) -> bool:
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
            b.h_lines = _ellipsize(b.h_lines, len(b.h_lines) - 1, box_w, mh)
        b.width, b.height = _block_dims(b, measure, p.price_badge)
    return b


# --------------------------------------------------------------------------- canvas


def _resize(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    a = np.asarray(img)
    if (a.shape[1], a.shape[0]) == size:
        return a
    shrink = size[0] < a.shape[1]
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


@dataclass
class _Layout:
    canvas: np.ndarray  # uint8 H x W x 3
    region: tuple[int, int, int, int]  # where the text block may go
    product: tuple[int, int, int, int]
    align: Literal["center", "left"]


def _map_box(b, sx: float, sy: float, ox: int, oy: int) -> tuple[int, int, int, int]:
    return (int(np.floor(b.x0 * sx + ox)), int(np.floor(b.y0 * sy + oy)),
            int(np.ceil(b.x1 * sx + ox)), int(np.ceil(b.y1 * sy + oy)))


def _layout(img: Image.Image, analysis: Analysis, W: int, H: int, p: AdParams, cache: dict) -> _Layout:
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
    return _Layout(canvas, region, prod, align)


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


def _free_strips(W, H, prod, gap, m) -> list[tuple[int, int, int, int]]:
    return [
        (0, 0, W, prod[1] - gap + m),
        (0, prod[3] + gap - m, W, H),
        (0, 0, prod[0] - gap + m, H),
        (prod[2] + gap - m, 0, W, H),
    ]


def _inset(region, W, H, m) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = region
    return max(x0, m), max(y0, m), min(x1, W - m), min(y1, H - m)


# --------------------------------------------------------------------------- drawing


def _draw_line(draw: ImageDraw.ImageDraw, x: float, baseline: float, text: str, size: int, chain) -> None:
    for path, s in _runs(text, chain):
        f = _font(path, size)
        draw.text((x, baseline), s, font=f, fill=255, anchor="ls")
        x += f.getlength(s)


def _pill_mask(w: int, h: int) -> np.ndarray:
    """Anti-aliased pill (4x supersampled), float 0..1."""
    ss = 4
    im = Image.new("L", (w * ss, h * ss))
    ImageDraw.Draw(im).rounded_rectangle((0, 0, w * ss - 1, h * ss - 1), radius=h * ss // 2, fill=255)
    return np.asarray(im.reduce(ss), dtype=np.float32) / 255.0


def _blend(canvas: np.ndarray, mask: np.ndarray, rgb, x0: int, y0: int, alpha: float = 1.0) -> None:
    """In place: canvas (float) <- rgb over canvas through mask (placed at x0, y0)."""
    x0c, y0c = max(0, x0), max(0, y0)
    sub = canvas[y0c : y0 + mask.shape[0], x0c : x0 + mask.shape[1]]
    m = mask[y0c - y0 : y0c - y0 + sub.shape[0], x0c - x0 : x0c - x0 + sub.shape[1]]
    sub += (np.asarray(rgb, np.float32)[None, None] - sub) * (m[..., None] * alpha)


def _lum(hexcol: str) -> float:
    return float(relative_luminance(np.asarray(hex_to_rgb(hexcol), np.float32) / 255.0))


def measure_contrast(text_hex: str, bg_pixels: np.ndarray, pct: float = 1.0) -> float:
    """`pct`-th percentile of the per-pixel WCAG contrast between a text colour and (N, 3)
    sRGB pixels (0..255): the contrast that 100 - pct % of the pixels reach."""
    if bg_pixels.size == 0:
        return 21.0
    lb = relative_luminance(np.asarray(bg_pixels, np.float32).reshape(-1, 3) / 255.0)
    lt = _lum(text_hex)
    c = (np.maximum(lb, lt) + 0.05) / (np.minimum(lb, lt) + 0.05)
    return float(np.percentile(c, pct))


def _choose_colour(preferred: str, bg: np.ndarray, target: float) -> tuple[str, float]:
    c = measure_contrast(preferred, bg)
    if c >= target:
        return preferred, c
    best_c, best = max((measure_contrast(h, bg), h) for h in (DARK, LIGHT))
    return best, best_c


# --------------------------------------------------------------------------- main


def _texts(details: ProductDetails, p: AdParams) -> tuple[str, str, str]:
    headline = clean_text(details.display_headline)
    subline = clean_text(details.subline)
    if not headline:
        headline, subline = (subline, "") if subline else (clean_text(p.fallback_headline) or "New arrival", "")
    return headline, subline, clean_text(details.price).replace("\n", " ")


def render_ads(
    image: Image.Image, analysis: Analysis, details: ProductDetails, params: AdParams | None = None
) -> list[AdCreative]:
    """One creative per size in `params.sizes` (see the module docstring for the layout)."""
    p = params or AdParams()
    img = image.convert("RGB")
    bold, regular = font_chain("bold", p.font_path), font_chain("regular", p.font_path)
    texts = _texts(details, p)
    headline, subline, price = texts
    # What the PNG can show (characters no font has are dropped from the PNG only).
    d_head = renderable(headline, bold).strip() or clean_text(p.fallback_headline) or "New arrival"
    drawn = (d_head, renderable(subline, regular).strip(), renderable(price, bold).strip())
    chains = {
        "head": chain_for(drawn[0], bold),
        "sub": chain_for(drawn[1], regular),
        "price": chain_for(drawn[2], bold),
    }
    measure = _Measurer(chains)
    cache: dict = {}
    alt = clean_text(details.name).replace("\n", " ") or headline.replace("\n", " ")
    lang = "ko" if re.search(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", headline + subline + alt) else "en"
    return [_render_one(name, W, H, img, analysis, p, chains, measure, texts, drawn, cache, alt, lang)
            for name, (W, H) in p.size_list()]


def _render_one(name, W, H, img, analysis, p, chains, measure, texts, drawn, cache, alt, lang) -> AdCreative:
    lay = _layout(img, analysis, W, H, p, cache)
    short, scale = min(W, H), (W * H) ** 0.5  # scale: 1080 for the square, 868 for 1200x628
    m = round(p.margin * scale)
    gap = round(p.product_gap * scale)
    d_head, d_sub, d_price = drawn

    min_w, min_h = p.min_font_px * 6, round(line_px(p.min_font_px) * 1.5)
    usable = lambda r: r[2] - r[0] >= min_w and r[3] - r[1] >= min_h  # noqa: E731
    region = _inset(lay.region, W, H, m)
    if not usable(region):
        # The recommended space is too small: take the largest free strip around the product.
        strips = [_inset(s, W, H, m) for s in _free_strips(W, H, lay.product, gap, m)]
        region = max(strips + [region], key=lambda r: max(0, r[2] - r[0]) * max(0, r[3] - r[1]))
    if not usable(region):
        # The product fills the frame: a band on the recommended side, over the product
        # (the contrast check below adds a scrim when it is needed).
        band = max(min_h, round(0.3 * H))
        top = analysis.text_zone.position == "top"
        region = _inset((0, 0 if top else H - band, W, band if top else H), W, H, m)
    rx0, ry0, rx1, ry1 = region
    box_w, box_h = max(1, rx1 - rx0), max(1, ry1 - ry0)

    block = _fit_block(d_head, d_sub, d_price, box_w, box_h, p, measure, max_px=round(MAX_FONT_SHORT * short))
    zone = (rx0, ry0, rx0 + box_w, ry0 + box_h)

    def ink_top(text: str, size: int) -> float:  # how far the price's ink rises above its baseline
        return -_font(_runs(text, chains["price"])[0][0], size).getbbox(text, anchor="ls")[1]

    shown = {"head": (d_head, block.h_lines), "sub": (d_sub, block.s_lines), "price": (d_price, [block.price])}
    fonts = {el: list(dict.fromkeys([chains[el][0]] + [f for f, _ in _runs(t, chains[el])]  # used, then the
                                    + [next((f for f in chains[el] if Path(f).parent == FONT_DIR), chains[el][0])]))
             for el, (t, _) in shown.items() if t}
    squash = lambda s: re.sub(r"\s", "", s)  # noqa: E731
    clamp = {el: len(ls) for el, (t, ls) in shown.items() if t and squash("".join(ls)) != squash(t)}
    top, lines, price_box = place_block(block, zone, lay.align, chains, measure, p.price_badge, ink_top,
                                        frozenset(clamp))
    L = AdLayout(name, W, H, zone, lay.align, top, block.h_size, block.s_size, block.p_size, lines, price_box,
                 fonts=fonts, balanced=dict(block.balanced))

    # Work in a crop around the block (the rest of the canvas is untouched).
    P = block.h_size + m
    xs = [ln.x for ln in lines] + ([price_box.x] if price_box else [])
    xe = [ln.x + ln.width for ln in lines] + ([price_box.x + price_box.w] if price_box else [])
    cx0, cy0 = max(0, int(min(xs)) - P), max(0, top - P)
    cx1, cy1 = min(W, int(np.ceil(max(xe))) + P), min(H, top + block.height + P)
    crop = lay.canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    cw, ch = cx1 - cx0, cy1 - cy0

    # ---- glyph mask of headline + subline
    mask_im = Image.new("L", (cw, ch))
    draw = ImageDraw.Draw(mask_im)
    for ln in lines:
        if ln.element != "price":
            _draw_line(draw, ln.x - cx0, ln.baseline - cy0, ln.text, ln.size, chains[ln.element])
    mask = np.asarray(mask_im, dtype=np.float32) / 255.0
    price_geom = None
    if price_box:
        price_geom = (int(round(price_box.x)) - cx0, price_box.y - cy0, int(np.ceil(price_box.w)), price_box.h)

    # ---- where the text is: ink bbox plus price (crop coordinates)
    boxes = []
    ys, xs = np.nonzero(mask > 0)
    if len(xs):
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    if price_geom:
        px, py, pw, ph = price_geom
        boxes.append((px, py, px + pw, py + ph))
    if not boxes:
        boxes.append((rx0 - cx0, top - cy0, rx0 - cx0 + 1, top - cy0 + 1))
    tb = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

    # ---- colour and contrast against the real pixels under the glyphs
    dil = max(2, round(block.h_size / 24))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dil + 1, 2 * dil + 1))
    under = cv2.dilate((mask > 0.02).astype(np.uint8), kernel) > 0
    colour, contrast = _choose_colour(analysis.text_colour, crop[under], p.min_contrast)
    scrim = False
    if contrast < p.min_contrast:
        scrim = True
        pad = max(6, min(round(block.h_size * 0.45), round(0.8 * m), round(0.8 * gap) if gap else m))
        sx0, sy0 = max(0, tb[0] - pad), max(0, tb[1] - pad)
        sx1, sy1 = min(cw, tb[2] + pad), min(ch, tb[3] + pad)
        sm = Image.new("L", (cw, ch))
        ImageDraw.Draw(sm).rounded_rectangle((sx0, sy0, sx1 - 1, sy1 - 1), radius=pad, fill=255)
        smask = cv2.GaussianBlur(np.asarray(sm, np.float32) / 255.0, (0, 0), 1.2)
        scrim_rgb = np.asarray((255, 255, 255) if _lum(colour) < 0.18 else (0, 0, 0), np.float32)
        base, wgt = crop[under], smask[under][:, None]
        alpha = 1.0
        for a in np.arange(0.2, 1.0001, 0.05):
            if measure_contrast(colour, base + (scrim_rgb - base) * wgt * a) >= p.min_contrast:
                alpha = float(a)
                break
        _blend(crop[sy0:sy1, sx0:sx1], smask[sy0:sy1, sx0:sx1], scrim_rgb, 0, 0, alpha)
        contrast = measure_contrast(colour, crop[under])
        tb = [min(tb[0], sx0), min(tb[1], sy0), max(tb[2], sx1), max(tb[3], sy1)]
    picture = lay.canvas.copy()  # the ad without its text, for the HTML page
    picture[cy0:cy1, cx0:cx1] = to_u8(crop.copy())

    rgb = hex_to_rgb(colour)
    if len(xs):
        ix0, iy0, ix1, iy1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        _blend(crop[iy0:iy1, ix0:ix1], mask[iy0:iy1, ix0:ix1], rgb, 0, 0)

    # ---- price: a pill in the text colour with black/white text, or a bold line
    L.colour = L.price_ink = colour
    if price_geom:
        px, py, pw, ph = price_geom
        pl = lines[-1]
        ps = pl.size
        if p.price_badge:
            _blend(crop, _pill_mask(pw, ph), rgb, px, py)
            lc = {h: contrast_ratio(_lum(colour), _lum(h)) for h in ("#000000", LIGHT)}  # max >= 4.58
            ptext = max(lc, key=lc.get)
            contrast = min(contrast, lc[ptext])
            L.price_fill, L.price_ink = colour, ptext
        else:
            ptext = colour
        # price glyphs drawn in a small mask around the price box (+ margin for overhang)
        ex = ps // 2 + dil
        qx0, qy0 = max(0, px - ex), max(0, py - ex)
        qx1, qy1 = min(cw, px + pw + ex), min(ch, py + ph + ex)
        pm = Image.new("L", (qx1 - qx0, qy1 - qy0))
        _draw_line(ImageDraw.Draw(pm), pl.x - cx0 - qx0, pl.baseline - cy0 - qy0, pl.text, ps, chains["price"])
        pmask = np.asarray(pm, dtype=np.float32) / 255.0
        sub = crop[qy0:qy1, qx0:qx1]
        if not p.price_badge:
            under_p = (cv2.dilate((pmask > 0.02).astype(np.uint8), kernel) > 0) & (mask[qy0:qy1, qx0:qx1] < 0.02)
            contrast = min(contrast, measure_contrast(colour, sub[under_p]))
        _blend(sub, pmask, hex_to_rgb(ptext), 0, 0)

    canvas = lay.canvas
    canvas[cy0:cy1, cx0:cx1] = to_u8(crop)
    png = Image.fromarray(canvas, "RGB")
    text_box = (tb[0] + cx0, tb[1] + cy0, tb[2] + cx0, tb[3] + cy0)
    page = ad_page(L, picture, *texts, alt=alt, lang=lang, clamp=clamp, min_font_px=p.min_font_px, version=VERSION)
    return AdCreative(name, png, page, text_box, colour, round(float(contrast), 3), scrim,
                      block.h_size, list(block.h_lines), L)
