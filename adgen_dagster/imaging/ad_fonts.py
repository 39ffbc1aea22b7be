"""Which font draws which character: the fallback chain, coverage checks, runs, widths.

Kept apart from the layout because it is the one part that depends on the machine (which
fonts are installed); everything here is cached, since coverage checks render glyphs.
"""

from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

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


@lru_cache(maxsize=512)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
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
    return _glyph_signature(load_font(path, 48), "\uffff")


@lru_cache(maxsize=1 << 16)
def covers(path: str, ch: str) -> bool:
    """True when `path` has a real glyph for `ch` (its rendering differs from .notdef)."""
    if ch.isspace() or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
        return True
    sig = _glyph_signature(load_font(path, 48), ch)
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
def font_runs(text: str, chain: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
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
    return "".join(s for _, s in font_runs(text, chain))


class Measurer:
    """Cached text widths for one render call."""

    def __init__(self, chains: dict[str, tuple[str, ...]]):  # element ("head"|"sub"|"price") -> chain
        self.chains = chains
        self._cache: dict[tuple[str, int, str], float] = {}

    def __call__(self, text: str, size: int, element: str) -> float:
        key = (text, size, element)
        w = self._cache.get(key)
        if w is None:
            w = sum(load_font(p, size).getlength(s) for p, s in font_runs(text, self.chains[element]))
            self._cache[key] = w
        return w
