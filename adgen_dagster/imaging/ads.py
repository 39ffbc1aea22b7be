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

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .ad_canvas import free_strips, inset, lay_out_canvas
from .ad_draw import blend, choose_text_colour, draw_line, pill_mask
from .ad_extend import to_u8
from .ad_fit import MAX_FONT_SHORT, fit_block
from .ad_fonts import FONT_DIR, Measurer, chain_for, font_chain, font_runs, load_font, renderable
from .ad_html import ad_page
from .ad_layout import AdLayout, line_px, place_block
from .ad_params import LIGHT, AdCreative, AdParams  # settings.py and assets_defs/ad_creatives.py (issue 13) import AdParams from here
from .analysis_model import Analysis
from .colour import contrast_ratio, hex_luminance, hex_to_rgb, percentile_contrast
from .details import ProductDetails
from .text_clean import clean_text

VERSION = "2"  # 2: live-text HTML, CSS line model for baselines, left-aligned blocks start at the zone edge


def _texts(details: ProductDetails, p: AdParams) -> tuple[str, str, str]:
    headline = clean_text(details.display_headline)
    subline = clean_text(details.subline)
    if not headline:
        headline, subline = (subline, "") if subline else (clean_text(p.fallback_headline) or "New arrival", "")
    return headline, subline, clean_text(details.price).replace("\n", " ")


@dataclass
class _Job:
    """What every size of one `render_ads` call shares."""

    img: Image.Image
    analysis: Analysis
    p: AdParams
    chains: dict[str, tuple[str, ...]]  # element ("head"|"sub"|"price") -> font chain
    measure: Measurer
    texts: tuple[str, str, str]  # headline, subline, price as given (the HTML shows them all)
    drawn: tuple[str, str, str]  # what the PNG's fonts can draw of them
    alt: str
    lang: str
    cache: dict = field(default_factory=dict)  # the photo resized, by size


def render_ads(
    image: Image.Image, analysis: Analysis, details: ProductDetails, params: AdParams | None = None
) -> list[AdCreative]:
    """One creative per size in `params.sizes` (see the module docstring for the layout)."""
    p = params or AdParams()
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
    alt = clean_text(details.name).replace("\n", " ") or headline.replace("\n", " ")
    lang = "ko" if re.search(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", headline + subline + alt) else "en"
    job = _Job(image.convert("RGB"), analysis, p, chains, Measurer(chains), texts, drawn, alt, lang)
    return [_render_one(name, W, H, job) for name, (W, H) in p.size_list()]


def _render_one(name: str, W: int, H: int, job: _Job) -> AdCreative:
    p = job.p
    # 1. The photo on the canvas, and the region the text may take.
    lay = lay_out_canvas(job.img, job.analysis, W, H, p, job.cache)
    short, scale = min(W, H), (W * H) ** 0.5  # scale: 1080 for the square, 868 for 1200x628
    m = round(p.margin * scale)
    gap = round(p.product_gap * scale)
    region = _text_region(lay.region, lay.product, W, H, p, job.analysis.text_zone.position, m, gap)

    # 2. The largest text block that fits there, every line placed.
    block, L, clamp = _place_text(name, W, H, region, lay.align, job, max_px=round(MAX_FONT_SHORT * short))

    # 3. Work in a crop around the block (the rest of the canvas is untouched): the glyph mask
    #    of headline + subline and the box of everything drawn (crop coordinates).
    P = block.h_size + m
    xs = [ln.x for ln in L.lines] + ([L.price.x] if L.price else [])
    xe = [ln.x + ln.width for ln in L.lines] + ([L.price.x + L.price.w] if L.price else [])
    cx0, cy0 = max(0, int(min(xs)) - P), max(0, L.block_top - P)
    cx1, cy1 = min(W, int(np.ceil(max(xe))) + P), min(H, L.block_top + block.height + P)
    crop = lay.canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    mask = _glyph_mask(L, job.chains, cx0, cy0, cx1 - cx0, cy1 - cy0)
    price_geom = None
    if L.price:
        price_geom = (int(round(L.price.x)) - cx0, L.price.y - cy0, int(np.ceil(L.price.w)), L.price.h)
    tb = _text_box(mask, price_geom, (region[0] - cx0, L.block_top - cy0))

    # 4. The text colour against the real pixels under the glyphs; a scrim when none is legible.
    dil = max(2, round(block.h_size / 24))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dil + 1, 2 * dil + 1))
    under = cv2.dilate((mask > 0.02).astype(np.uint8), kernel) > 0
    colour, contrast = choose_text_colour(job.analysis.text_colour, crop[under], p.min_contrast)
    scrim = contrast < p.min_contrast
    if scrim:
        pad = max(6, min(round(block.h_size * 0.45), round(0.8 * m), round(0.8 * gap) if gap else m))
        tb, contrast = _add_scrim(crop, under, tb, pad, colour, p.min_contrast)
    picture = lay.canvas.copy()  # the ad without its text, for the HTML page
    picture[cy0:cy1, cx0:cx1] = to_u8(crop.copy())
    ys, xs = np.nonzero(mask > 0)
    if len(xs):
        ix0, iy0, ix1, iy1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        blend(crop[iy0:iy1, ix0:ix1], mask[iy0:iy1, ix0:ix1], hex_to_rgb(colour), 0, 0)

    # 5. The price: a pill in the text colour with black/white text, or a bold line.
    L.colour = L.price_ink = colour
    if price_geom:
        contrast = _draw_price(crop, mask, kernel, price_geom, L, colour, contrast, p.price_badge,
                               job.chains["price"], (cx0, cy0), pad=L.lines[-1].size // 2 + dil)

    # 6. The PNG and the HTML page from the same layout.
    canvas = lay.canvas
    canvas[cy0:cy1, cx0:cx1] = to_u8(crop)
    png = Image.fromarray(canvas, "RGB")
    text_box = (tb[0] + cx0, tb[1] + cy0, tb[2] + cx0, tb[3] + cy0)
    page = ad_page(L, picture, *job.texts, alt=job.alt, lang=job.lang, clamp=clamp, min_font_px=p.min_font_px,
                   version=VERSION)
    return AdCreative(name, png, page, text_box, colour, round(float(contrast), 3), scrim,
                      block.h_size, list(block.h_lines), L)


def _text_region(recommended, product, W: int, H: int, p: AdParams, position: str, m: int, gap: int):
    """The layout's text region inside the margins, or, when too small for the smallest text,
    the largest free strip around the product, or a band over the product."""
    min_w, min_h = p.min_font_px * 6, round(line_px(p.min_font_px) * 1.5)
    usable = lambda r: r[2] - r[0] >= min_w and r[3] - r[1] >= min_h  # noqa: E731
    region = inset(recommended, W, H, m)
    if not usable(region):
        # The recommended space is too small: take the largest free strip around the product.
        strips = [inset(s, W, H, m) for s in free_strips(W, H, product, gap, m)]
        region = max(strips + [region], key=lambda r: max(0, r[2] - r[0]) * max(0, r[3] - r[1]))
    if not usable(region):
        # The product fills the frame: a band on the recommended side, over the product
        # (the contrast check adds a scrim when it is needed).
        band = max(min_h, round(0.3 * H))
        top = position == "top"
        region = inset((0, 0 if top else H - band, W, band if top else H), W, H, m)
    return region


def _place_text(name: str, W: int, H: int, region, align, job: _Job, max_px: int):
    """(the fitted block, its `AdLayout`, the elements whose lines are clamped) for one region."""
    p, chains, measure = job.p, job.chains, job.measure
    d_head, d_sub, d_price = job.drawn
    rx0, ry0, rx1, ry1 = region
    box_w, box_h = max(1, rx1 - rx0), max(1, ry1 - ry0)
    block = fit_block(d_head, d_sub, d_price, box_w, box_h, p, measure, max_px=max_px)
    zone = (rx0, ry0, rx0 + box_w, ry0 + box_h)

    def ink_top(text: str, size: int) -> float:  # how far the price's ink rises above its baseline
        return -load_font(font_runs(text, chains["price"])[0][0], size).getbbox(text, anchor="ls")[1]

    shown = {"head": (d_head, block.h_lines), "sub": (d_sub, block.s_lines), "price": (d_price, [block.price])}
    fonts = {el: list(dict.fromkeys([chains[el][0]] + [f for f, _ in font_runs(t, chains[el])]  # used, then the
                                    + [next((f for f in chains[el] if Path(f).parent == FONT_DIR), chains[el][0])]))
             for el, (t, _) in shown.items() if t}
    squash = lambda s: re.sub(r"\s", "", s)  # noqa: E731
    clamp = {el: len(ls) for el, (t, ls) in shown.items() if t and squash("".join(ls)) != squash(t)}
    top, lines, price_box = place_block(block, zone, align, chains, measure, p.price_badge, ink_top,
                                        frozenset(clamp))
    layout = AdLayout(name, W, H, zone, align, top, block.h_size, block.s_size, block.p_size, lines, price_box,
                      fonts=fonts, balanced=dict(block.balanced))
    return block, layout, clamp


def _glyph_mask(L: AdLayout, chains, cx0: int, cy0: int, cw: int, ch: int) -> np.ndarray:
    """Headline and subline glyphs (float 0..1) on a crop whose corner is at (cx0, cy0)."""
    mask_im = Image.new("L", (cw, ch))
    draw = ImageDraw.Draw(mask_im)
    for ln in L.lines:
        if ln.element != "price":
            draw_line(draw, ln.x - cx0, ln.baseline - cy0, ln.text, ln.size, chains[ln.element])
    return np.asarray(mask_im, dtype=np.float32) / 255.0


def _text_box(mask: np.ndarray, price_geom, fallback_corner) -> list[int]:
    """x0, y0, x1, y1 of the ink plus the price box; a 1 px box at the block's corner when nothing is drawn."""
    boxes = []
    ys, xs = np.nonzero(mask > 0)
    if len(xs):
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    if price_geom:
        px, py, pw, ph = price_geom
        boxes.append((px, py, px + pw, py + ph))
    if not boxes:
        x, y = fallback_corner
        boxes.append((x, y, x + 1, y + 1))
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _add_scrim(crop: np.ndarray, under: np.ndarray, tb: list[int], pad: int, colour: str, target: float):
    """In place: a soft rounded scrim behind the text box, at the lowest opacity that reaches `target`.
    Returns the text box grown by the scrim and the contrast measured after it."""
    ch, cw = crop.shape[:2]
    sx0, sy0 = max(0, tb[0] - pad), max(0, tb[1] - pad)
    sx1, sy1 = min(cw, tb[2] + pad), min(ch, tb[3] + pad)
    sm = Image.new("L", (cw, ch))
    ImageDraw.Draw(sm).rounded_rectangle((sx0, sy0, sx1 - 1, sy1 - 1), radius=pad, fill=255)
    smask = cv2.GaussianBlur(np.asarray(sm, np.float32) / 255.0, (0, 0), 1.2)
    scrim_rgb = np.asarray((255, 255, 255) if hex_luminance(colour) < 0.18 else (0, 0, 0), np.float32)
    base, wgt = crop[under], smask[under][:, None]
    alpha = 1.0
    for a in np.arange(0.2, 1.0001, 0.05):
        if percentile_contrast(colour, base + (scrim_rgb - base) * wgt * a) >= target:
            alpha = float(a)
            break
    blend(crop[sy0:sy1, sx0:sx1], smask[sy0:sy1, sx0:sx1], scrim_rgb, 0, 0, alpha)
    contrast = percentile_contrast(colour, crop[under])
    return [min(tb[0], sx0), min(tb[1], sy0), max(tb[2], sx1), max(tb[3], sy1)], contrast


def _draw_price(crop, mask, kernel, price_geom, L: AdLayout, colour: str, contrast: float, badge: bool,
                chain, corner, pad: int) -> float:
    """In place: the price (a pill with black or white text, or a line in the text colour) on the crop.
    Returns the contrast, lowered to the price's own where that is less."""
    px, py, pw, ph = price_geom
    cx0, cy0 = corner
    ch, cw = crop.shape[:2]
    pl = L.lines[-1]
    if badge:
        blend(crop, pill_mask(pw, ph), hex_to_rgb(colour), px, py)
        lc = {h: contrast_ratio(hex_luminance(colour), hex_luminance(h)) for h in ("#000000", LIGHT)}  # max >= 4.58
        ptext = max(lc, key=lc.get)
        contrast = min(contrast, lc[ptext])
        L.price_fill, L.price_ink = colour, ptext
    else:
        ptext = colour
    # price glyphs drawn in a small mask around the price box (+ `pad` for overhang)
    qx0, qy0 = max(0, px - pad), max(0, py - pad)
    qx1, qy1 = min(cw, px + pw + pad), min(ch, py + ph + pad)
    pm = Image.new("L", (qx1 - qx0, qy1 - qy0))
    draw_line(ImageDraw.Draw(pm), pl.x - cx0 - qx0, pl.baseline - cy0 - qy0, pl.text, pl.size, chain)
    pmask = np.asarray(pm, dtype=np.float32) / 255.0
    sub = crop[qy0:qy1, qx0:qx1]
    if not badge:
        under_p = (cv2.dilate((pmask > 0.02).astype(np.uint8), kernel) > 0) & (mask[qy0:qy1, qx0:qx1] < 0.02)
        contrast = min(contrast, percentile_contrast(colour, sub[under_p]))
    blend(sub, pmask, hex_to_rgb(ptext), 0, 0)
    return contrast
