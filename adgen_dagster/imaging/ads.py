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
    measure = Measurer(chains)
    cache: dict = {}
    alt = clean_text(details.name).replace("\n", " ") or headline.replace("\n", " ")
    lang = "ko" if re.search(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", headline + subline + alt) else "en"
    return [_render_one(name, W, H, img, analysis, p, chains, measure, texts, drawn, cache, alt, lang)
            for name, (W, H) in p.size_list()]


def _render_one(name, W, H, img, analysis, p, chains, measure, texts, drawn, cache, alt, lang) -> AdCreative:
    lay = lay_out_canvas(img, analysis, W, H, p, cache)
    short, scale = min(W, H), (W * H) ** 0.5  # scale: 1080 for the square, 868 for 1200x628
    m = round(p.margin * scale)
    gap = round(p.product_gap * scale)
    d_head, d_sub, d_price = drawn

    min_w, min_h = p.min_font_px * 6, round(line_px(p.min_font_px) * 1.5)
    usable = lambda r: r[2] - r[0] >= min_w and r[3] - r[1] >= min_h  # noqa: E731
    region = inset(lay.region, W, H, m)
    if not usable(region):
        # The recommended space is too small: take the largest free strip around the product.
        strips = [inset(s, W, H, m) for s in free_strips(W, H, lay.product, gap, m)]
        region = max(strips + [region], key=lambda r: max(0, r[2] - r[0]) * max(0, r[3] - r[1]))
    if not usable(region):
        # The product fills the frame: a band on the recommended side, over the product
        # (the contrast check below adds a scrim when it is needed).
        band = max(min_h, round(0.3 * H))
        top = analysis.text_zone.position == "top"
        region = inset((0, 0 if top else H - band, W, band if top else H), W, H, m)
    rx0, ry0, rx1, ry1 = region
    box_w, box_h = max(1, rx1 - rx0), max(1, ry1 - ry0)

    block = fit_block(d_head, d_sub, d_price, box_w, box_h, p, measure, max_px=round(MAX_FONT_SHORT * short))
    zone = (rx0, ry0, rx0 + box_w, ry0 + box_h)

    def ink_top(text: str, size: int) -> float:  # how far the price's ink rises above its baseline
        return -load_font(font_runs(text, chains["price"])[0][0], size).getbbox(text, anchor="ls")[1]

    shown = {"head": (d_head, block.h_lines), "sub": (d_sub, block.s_lines), "price": (d_price, [block.price])}
    fonts = {el: list(dict.fromkeys([chains[el][0]] + [f for f, _ in font_runs(t, chains[el])]  # used, then the
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
            draw_line(draw, ln.x - cx0, ln.baseline - cy0, ln.text, ln.size, chains[ln.element])
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
    colour, contrast = choose_text_colour(analysis.text_colour, crop[under], p.min_contrast)
    scrim = False
    if contrast < p.min_contrast:
        scrim = True
        pad = max(6, min(round(block.h_size * 0.45), round(0.8 * m), round(0.8 * gap) if gap else m))
        sx0, sy0 = max(0, tb[0] - pad), max(0, tb[1] - pad)
        sx1, sy1 = min(cw, tb[2] + pad), min(ch, tb[3] + pad)
        sm = Image.new("L", (cw, ch))
        ImageDraw.Draw(sm).rounded_rectangle((sx0, sy0, sx1 - 1, sy1 - 1), radius=pad, fill=255)
        smask = cv2.GaussianBlur(np.asarray(sm, np.float32) / 255.0, (0, 0), 1.2)
        scrim_rgb = np.asarray((255, 255, 255) if hex_luminance(colour) < 0.18 else (0, 0, 0), np.float32)
        base, wgt = crop[under], smask[under][:, None]
        alpha = 1.0
        for a in np.arange(0.2, 1.0001, 0.05):
            if percentile_contrast(colour, base + (scrim_rgb - base) * wgt * a) >= p.min_contrast:
                alpha = float(a)
                break
        blend(crop[sy0:sy1, sx0:sx1], smask[sy0:sy1, sx0:sx1], scrim_rgb, 0, 0, alpha)
        contrast = percentile_contrast(colour, crop[under])
        tb = [min(tb[0], sx0), min(tb[1], sy0), max(tb[2], sx1), max(tb[3], sy1)]
    picture = lay.canvas.copy()  # the ad without its text, for the HTML page
    picture[cy0:cy1, cx0:cx1] = to_u8(crop.copy())

    rgb = hex_to_rgb(colour)
    if len(xs):
        ix0, iy0, ix1, iy1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        blend(crop[iy0:iy1, ix0:ix1], mask[iy0:iy1, ix0:ix1], rgb, 0, 0)

    # ---- price: a pill in the text colour with black/white text, or a bold line
    L.colour = L.price_ink = colour
    if price_geom:
        px, py, pw, ph = price_geom
        pl = lines[-1]
        ps = pl.size
        if p.price_badge:
            blend(crop, pill_mask(pw, ph), rgb, px, py)
            lc = {h: contrast_ratio(hex_luminance(colour), hex_luminance(h)) for h in ("#000000", LIGHT)}  # max >= 4.58
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
        draw_line(ImageDraw.Draw(pm), pl.x - cx0 - qx0, pl.baseline - cy0 - qy0, pl.text, ps, chains["price"])
        pmask = np.asarray(pm, dtype=np.float32) / 255.0
        sub = crop[qy0:qy1, qx0:qx1]
        if not p.price_badge:
            under_p = (cv2.dilate((pmask > 0.02).astype(np.uint8), kernel) > 0) & (mask[qy0:qy1, qx0:qx1] < 0.02)
            contrast = min(contrast, percentile_contrast(colour, sub[under_p]))
        blend(sub, pmask, hex_to_rgb(ptext), 0, 0)

    canvas = lay.canvas
    canvas[cy0:cy1, cx0:cx1] = to_u8(crop)
    png = Image.fromarray(canvas, "RGB")
    text_box = (tb[0] + cx0, tb[1] + cy0, tb[2] + cx0, tb[3] + cy0)
    page = ad_page(L, picture, *texts, alt=alt, lang=lang, clamp=clamp, min_font_px=p.min_font_px, version=VERSION)
    return AdCreative(name, png, page, text_box, colour, round(float(contrast), 3), scrim,
                      block.h_size, list(block.h_lines), L)
