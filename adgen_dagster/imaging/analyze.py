"""Classical (CPU, model-free) analysis of a retouched ad image.

`analyze_classical` answers the questions the ad renderer needs, with numpy and OpenCV
only, in well under a second for a 1024x1024 image:

- **tone** (warm / cool / neutral): the mean Lab chroma projected on a warm axis
  (orange-red, Lab hue 45 deg); a dead zone around zero is neutral.
- **brightness**: mean WCAG relative luminance.
- **main_colours**: k-means in Lab on a small downsample (seeded, deterministic),
  near-duplicates merged, tiny clusters dropped, shares renormalised and sorted.
- **mood**: a few words from a small rule table over tone, brightness, saturation and
  contrast.
- **product_box**: bbox of the product mask (alpha > 127), or, without a mask, of the
  pixels that differ from a smooth (polynomial) fit of the studio background.
- **text_zone**: the least busy free band (top, center, bottom) that does not overlap
  the product, with side margins; see `choose_zone` for the tiers and the score.
- **text_colour / text_contrast**: the candidate (tint of the background hue, then
  near-black / white, then pure black) that stays legible on the *worst* part of the
  zone (low/high luminance percentiles); `text_contrast` is its WCAG ratio against the
  zone's mean luminance.

Everything works in relative units (fractions of the image size), so any image size
works; 1024x1024 is the expected one.
"""


from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .analysis_model import Analysis, Box, TextZone
from .analysis_params import AnalysisParams  # settings.py and assets_defs/analysis.py (issue 13) import it from here
from .analyze_colour import legible_text_colour, mood_words, palette_of, tone_of
from .analyze_regions import Pyramid, choose_zone, estimate_product, mask_bbox, resize_to, scale_box
from .backend import OnCpu
from .colour import relative_luminance, srgb_to_lab


VERSION = "1"


# ------------------------------------------------------------------------------------
# entry point


def analyze_classical(
    image: Image.Image,
    product_mask: Image.Image | None = None,
    params: AnalysisParams | None = None,
) -> Analysis:
    """Analyse a (retouched) ad image; see the module docstring for what each field means.

    `product_mask` is the product's alpha (mode "L", same size as the image); pixels above
    127 are product. Without one (or with an empty one) the product is estimated from
    what a smooth studio background cannot explain. If nothing stands out, the product
    box is assumed to be the central 40% of the frame.
    """
    p = params or AnalysisParams()
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    H, W = rgb.shape[:2]
    pyr = Pyramid(rgb)
    edge_rgb = pyr.get(p.edge_size)

    # --- product -------------------------------------------------------------------
    stats_rgb = pyr.get(p.stats_size)
    sh, sw = stats_rgb.shape[:2]
    box = None
    mask_small = None
    if product_mask is not None:
        if product_mask.size != (W, H):
            raise ValueError(f"product_mask is {product_mask.size[0]}x{product_mask.size[1]}, image is {W}x{H}")
        m = np.asarray(product_mask.convert("L"), dtype=np.uint8)
        box = mask_bbox(m > 127)
        if box is not None:
            mask_small = resize_to(m, p.stats_size).astype(np.float32) / 255.0
    if box is None:
        est = estimate_product(pyr, p)
        eh, ew = est.shape
        eb = mask_bbox(est)
        if eb is not None:
            box = scale_box(eb, W / ew, H / eh, W, H)
            mask_small = cv2.resize(est.astype(np.float32), (sw, sh), interpolation=cv2.INTER_LINEAR)
        else:
            box = (round(W * 0.3), round(H * 0.3), max(round(W * 0.3) + 1, round(W * 0.7)), max(round(H * 0.3) + 1, round(H * 0.7)))
            mask_small = np.zeros((sh, sw), np.float32)
            bx = scale_box(box, sw / W, sh / H, sw, sh)
            mask_small[bx[1] : bx[3], bx[0] : bx[2]] = 1.0
    product_box = Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3])

    # --- global statistics ---------------------------------------------------------
    lab = srgb_to_lab(stats_rgb.astype(np.float32) / 255.0)
    lum = relative_luminance(stats_rgb.astype(np.float32) / 255.0)
    brightness = float(np.clip(lum.mean(), 0.0, 1.0))
    tone, _warmth = tone_of(lab, p)
    chroma = float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    contrast = float(lab[..., 0].std())
    mood = mood_words(tone, brightness, chroma, contrast, p)
    main_colours = palette_of(pyr, p)

    # Background hue: median a*, b* of the pixels that are not product.
    bg_sel = mask_small < 0.5
    if bg_sel.sum() < 16:
        bg_sel = np.ones_like(bg_sel)
    bg_ab = (float(np.median(lab[..., 1][bg_sel])), float(np.median(lab[..., 2][bg_sel])))

    # --- text zone -----------------------------------------------------------------
    grey = cv2.cvtColor(edge_rgb, cv2.COLOR_RGB2GRAY)
    edges = (cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), p.canny_low, p.canny_high) > 0).astype(np.uint8)
    greyf = grey.astype(np.float32)
    detail = np.abs(greyf - cv2.GaussianBlur(greyf, (0, 0), p.detail_sigma))
    zone = choose_zone(
        W,
        H,
        box,
        cv2.integral(edges, sdepth=cv2.CV_32S),
        cv2.integral(detail, sdepth=cv2.CV_64F),
        edges.shape,
        mask_small,
        p,
    )

    zx0, zy0, zx1, zy1 = scale_box(zone.box, sw / W, sh / H, sw, sh)
    text_colour, text_contrast = legible_text_colour(stats_rgb[zy0:zy1, zx0:zx1], bg_ab, p)

    zb = zone.box
    return Analysis(
        width=W,
        height=H,
        tone=tone,
        brightness=round(brightness, 4),
        main_colours=main_colours,
        mood=mood,
        product_box=product_box,
        text_zone=TextZone(
            position=zone.position,
            box=Box(x0=zb[0], y0=zb[1], x1=zb[2], y1=zb[3]),
            busyness=round(zone.busyness, 4),
        ),
        text_colour=text_colour,
        text_contrast=round(float(np.clip(text_contrast, 1.0, 21.0)), 3),
        backend="classical",
    )


class ClassicalAnalyzer(OnCpu):
    """The `classical` analyzer (`imaging.backend.Analyzer`): `analyze_classical`."""

    name = "classical"
    description = "CPU, no weights: colour science and layout"

    def __call__(self, image: Image.Image, mask: Image.Image | None, params: AnalysisParams) -> Analysis:
        return analyze_classical(image, mask, params)
