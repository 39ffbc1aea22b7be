"""The ad as an HTML page a marketer can edit: the picture without text, the text live.

`ad_page(layout, headline, subline, price, alt=, lang=)` renders `templates/ad.html.j2`
(Jinja2, autoescaped: product text is always escaped) for one `AdLayout`:

- The picture is the ad without its text (extended, retouched, scrim included), embedded as
  a JPEG data URI (quality 90): a tenth of the PNG's size, so the page works moved alone.
  WebP would be 2-4 times smaller still at the same SSIM, but encodes about 20 times
  slower (0.7 s against 0.03 s for the four sizes of a product on this 2-core machine), and
  the picture is 10-20% of a page whose embedded fonts are most of it.
- Headline, subline and price are real text in the layout's text zone, with the layout's
  font sizes, line heights, gaps, colours and price pill, set in the fonts the PNG used.
  Shipped fonts are embedded whole as WOFF 1.0 (`webfont`) with their OFL licence in a CSS
  comment; not subset, so an edited headline may use any character of the font. Other
  fonts are only named (`local()`), never embedded.
- The browser wraps the lines: `text-wrap: balance` where the layout balanced its lines
  (the same narrowest-width-for-this-many-lines rule), `word-break: keep-all` for Korean and
  Latin (break at spaces) and `normal` where the text has CJK ideographs or kana (break
  anywhere), `overflow-wrap: anywhere` for a word wider than the zone.
- Shrinking without scripts: the zone is an `overflow: hidden` box; an empty `.end` element
  after the block is the subject of a CSS view timeline on it, so how far the block runs
  past the zone's bottom is the animation progress, and keyframes turn that into the
  `scale` that makes the block fit (not below `AdParams.min_font_px`). Transforms do not
  affect layout, so this does not feed back. A browser without scroll-driven animations
  shows the block unscaled, clipped to the zone.
- Content-Security-Policy: nothing but inline styles and data: images and fonts; no script
  can run and nothing is fetched.
"""

from __future__ import annotations

import base64
import io
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from markupsafe import Markup
from PIL import Image

from .ad_layout import PILL_PAD, PRICE_GAP, SUBLINE_GAP, AdLayout, line_px
from .webfont import font_names, woff

CSP = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
PICTURE_FORMAT, PICTURE_QUALITY = "JPEG", 90
FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
BUILTIN = "<pillow-builtin>"  # ads.BUILTIN_FONT: nothing a browser can use
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


@lru_cache(maxsize=1)
def _env():
    # imported here: every command loads the settings, which name this module, and most never render a page
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                       autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def picture_uri(picture: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(picture, "RGB").save(buf, PICTURE_FORMAT, quality=PICTURE_QUALITY)
    return f"data:image/{PICTURE_FORMAT.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def family(path: str) -> str:
    """CSS family name for a font file (letters, digits and dashes only)."""
    return ("adgen-" if shipped(path) else "adgen-local-") + re.sub(r"[^A-Za-z0-9-]", "-", Path(path).stem)


def shipped(path: str) -> bool:
    """Fonts shipped in adgen_dagster/fonts (OFL): the only ones a page embeds."""
    return Path(path).parent == FONT_DIR


def _font_faces(paths: list[str]) -> str:
    """Shipped fonts embedded whole; any other font (a system font, `AdParams.font_path`) is
    only named, through `local()`: its licence may not allow redistribution, and a viewer
    who has it installed sees it, anyone else the shipped fallback after it."""
    faces = []
    for path in paths:
        if shipped(path):
            src = f'url({_font_uri(path)}) format("woff")'
        else:
            names = [re.sub(r'[^A-Za-z0-9 ._-]', "", n) for n in font_names(path)]
            if not any(names):
                continue
            src = ", ".join(f'local("{n}")' for n in names if n)
        faces.append(f'@font-face {{ font-family: "{family(path)}"; src: {src}; font-display: block; }}')
    return "\n".join(faces)


@lru_cache(maxsize=8)
def _font_uri(path: str) -> str:
    return "data:font/woff;base64," + base64.b64encode(woff(path)).decode("ascii")


@lru_cache(maxsize=1)
def _ofl() -> str:
    text = (FONT_DIR / "OFL.txt").read_text(encoding="utf-8").replace("*/", "* /")
    return "/* The embedded fonts below:\n\n" + text.strip() + "\n*/\n"


def _licence(paths: list[str]) -> str:
    return _ofl() if any(shipped(p) for p in paths) else ""


def _fit_keyframes(zone_h: int, pad: int, s_min: float) -> tuple[str, str]:
    """`animation-range` and keyframes that scale the block to fit the zone (see the docstring).

    The scrollport is the zone plus `pad` on each side; with the block at the top (it only
    scales when taller than the zone, so it is), the `.end` element's top is at pad + block
    height. At scroll offset 0, an animation range of `cover o1 cover o2` gives progress
    (port - o1 - end_top) / (o2 - o1): 100% when the block just fits, 0% when it is
    zone_h / s_min tall."""
    port = zone_h + 2 * pad
    o2, o1 = pad, port - (pad + zone_h / s_min)
    stops = []
    for s in np.geomspace(s_min, 1.0, 24):
        a = (port - o1 - (pad + zone_h / s)) / (o2 - o1)
        stops.append(f"{100 * a:.3f}% {{ scale: {s:.5f}; }}")
    return f"cover {o1:.2f}px cover {o2:.2f}px", " ".join(stops)


def _css(L: AdLayout, fonts: dict[str, list[str]], faces: str, breaks: dict[str, str],
         clamp: dict[str, int], min_font_px: int) -> str:
    for c in (L.colour, L.price_fill or L.colour, L.price_ink or L.colour):
        if not _HEX.match(c):
            raise ValueError(f"not a #rrggbb colour: {c!r}")
    x0, y0, x1, y1 = L.zone
    pad = max(8, round(0.3 * L.head_size))  # room for glyphs overhanging their line boxes
    fam = {el: ", ".join(f'"{family(f)}"' for f in fs) + ", sans-serif" for el, fs in fonts.items()}
    origin = "0 0" if L.align == "left" else "50% 0"
    css = [faces, f"""html, body {{ margin: 0; background: #f2f2f2; }}
.ad {{ position: relative; width: {L.width}px; height: {L.height}px; margin: 0 auto; overflow: hidden; }}
.picture {{ display: block; width: {L.width}px; height: {L.height}px; }}
.zone {{ position: absolute; left: {x0 - pad}px; top: {y0 - pad}px; width: {x1 - x0}px; height: {y1 - y0}px;
  padding: {pad}px; overflow: hidden; display: flex; flex-direction: column; justify-content: safe center;
  timeline-scope: --fit; }}
.block {{ flex: none; color: {L.colour}; text-align: {L.align}; transform-origin: {origin};
  font-kerning: normal; font-synthesis: none; }}
.block > * {{ margin: 0; font-weight: 400; overflow-wrap: anywhere; }}
.headline {{ font-family: {fam['head']}; font-size: {L.head_size}px; line-height: {line_px(L.head_size)}px;
  word-break: {breaks['head']}; text-wrap: {'balance' if L.balanced.get('head') else 'wrap'}; }}
.end {{ flex: none; height: 0; view-timeline: --fit block; }}"""]
    if L.sub_size and "sub" in fam:
        css.append(f""".subline {{ font-family: {fam['sub']}; font-size: {L.sub_size}px; line-height: {line_px(L.sub_size)}px;
  margin-top: {round(L.head_size * SUBLINE_GAP)}px; word-break: {breaks['sub']};
  text-wrap: {'balance' if L.balanced.get('sub') else 'wrap'}; }}""")
    for el, cls in (("head", "headline"), ("sub", "subline")):
        if el in clamp:  # the layout ellipsized this element (or left it out): so does the page
            css.append(f".{cls} {{ display: -webkit-box; -webkit-box-orient: vertical; "
                       f"-webkit-line-clamp: {clamp[el]}; overflow: hidden; }}" if clamp[el] else
                       f".{cls} {{ display: none; }}")
    if L.price and "price" in fam:
        ps, pb = L.price_size, L.price
        css.append(f""".price {{ font-family: {fam['price']}; font-size: {ps}px; line-height: {pb.h}px;
  margin-top: {round(L.head_size * PRICE_GAP)}px; white-space: nowrap; }}""")
        if pb.badge:
            css.append(f""".price > span {{ display: inline-block; vertical-align: top; height: {pb.h}px;
  line-height: {pb.h + 2 * pb.shift}px; padding: 0 {PILL_PAD * ps:g}px; border-radius: {pb.h / 2:g}px;
  background: {L.price_fill}; color: {L.price_ink}; }}""")
    s_min = min(1.0, min_font_px / max(1, L.head_size))
    if s_min < 1.0:
        rng, frames = _fit_keyframes(y1 - y0, pad, s_min)
        css.append(f""".block {{ animation: fit linear both; animation-timeline: --fit; animation-range: {rng}; }}
@keyframes fit {{ {frames} }}""")
    return "\n".join(c for c in css if c)


def ad_page(L: AdLayout, picture: np.ndarray, headline: str, subline: str, price: str, *, alt: str, lang: str,
            clamp: dict[str, int] | None = None, min_font_px: int = 28, version: str = "") -> str:
    """The standalone HTML page of one ad (see the module docstring). `picture`: the ad
    without its text (uint8 H x W x 3); `clamp`: element -> lines, where the layout ellipsized."""
    fonts = {el: [f for f in fs if f != BUILTIN] for el, fs in L.fonts.items()}
    embedded = list(dict.fromkeys(f for fs in fonts.values() for f in fs))
    breaks = {el: "normal" if _CJK.search(t) else "keep-all" for el, t in (("head", headline), ("sub", subline))}
    css = _licence(embedded) + _css(L, fonts, _font_faces(embedded), breaks, clamp or {}, min_font_px)
    note = "; ".join(f"{Path(f).stem} ({'embedded' if shipped(f) else 'if installed'})" for f in embedded) or "none"
    return _env().get_template("ad.html.j2").render(
        lang=lang, csp=Markup(CSP), width=L.width, height=L.height, size_name=L.size_name, version=version,
        title=headline.replace("\n", " "), font_note=note, css=Markup(css), picture=picture_uri(picture),
        alt=alt, headline=headline.split("\n"), subline=subline.split("\n") if subline else [], price=price,
    )
