"""Ad creatives: sizes, placement, contrast, wrapping, Hangul, HTML safety, seams."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from adgen_dagster.imaging import ads
from adgen_dagster.imaging.ads import AD_SIZES, AdParams, render_ads
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.colour import hex_to_rgb, relative_luminance
from adgen_dagster.imaging.details import ProductDetails

N = 1024
PRODUCT_RGB = (70, 45, 30)  # a dark brown blob, far from any text colour the renderer uses
PRODUCT_CENTRE, PRODUCT_AXES = (512, 640), (200, 250)


def _studio(top=(236, 228, 214), bottom=(190, 176, 156), vignette=0.12) -> np.ndarray:
    """Smooth sweep: vertical gradient times a soft horizontal vignette (no noise)."""
    y = np.linspace(0, 1, N, dtype=np.float32)[:, None, None]
    x = np.linspace(-1, 1, N, dtype=np.float32)[None, :, None]
    t, b = np.asarray(top, np.float32), np.asarray(bottom, np.float32)
    return (t + (b - t) * y) * (1 - vignette * x**2)


def _with_product(bg: np.ndarray) -> tuple[Image.Image, tuple[int, int, int, int]]:
    img = np.clip(bg + 0.5, 0, 255).astype(np.uint8)
    cv2.ellipse(img, PRODUCT_CENTRE, PRODUCT_AXES, 0, 0, 360, PRODUCT_RGB, -1, lineType=cv2.LINE_8)
    (cx, cy), (ax, ay) = PRODUCT_CENTRE, PRODUCT_AXES
    return Image.fromarray(img), (cx - ax, cy - ay, cx + ax + 1, cy + ay + 1)


def _analysis(box, text_colour="#1a1a1a", position="top", zone=None) -> Analysis:
    zx0, zy0, zx1, zy1 = zone or (40, 30, N - 40, box[1] - 40)
    return Analysis.model_validate(
        {
            "width": N,
            "height": N,
            "tone": "warm",
            "brightness": 0.7,
            "main_colours": [{"hex": "#e0d6c6", "share": 0.8}, {"hex": "#462d1e", "share": 0.2}],
            "mood": ["calm", "minimal"],
            "product_box": {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]},
            "text_zone": {"position": position, "box": {"x0": zx0, "y0": zy0, "x1": zx1, "y1": zy1}, "busyness": 0.01},
            "text_colour": text_colour,
            "text_contrast": 12.0,
        }
    )


@pytest.fixture(scope="module")
def studio():
    img, box = _with_product(_studio())
    return img, _analysis(box)


DETAILS = ProductDetails(name="Linen shirt", headline="Summer linen shirts", subline="Breathable, relaxed fit", price="$39")


@pytest.fixture(scope="module")
def creatives(studio):
    img, an = studio
    return render_ads(img, an, DETAILS)


def _product_mask(png: Image.Image) -> np.ndarray:
    a = np.asarray(png).astype(np.int16)
    return np.all(np.abs(a - np.asarray(PRODUCT_RGB)) <= 6, axis=2)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _pixel_contrast(c: ads.AdCreative, pct: float = 1.0) -> float:
    """Independent check: text-coloured pixels in the text box are the ink (and the price pill);
    everything in the box more than 6 px away from them is the background the text sits on."""
    a = np.asarray(c.png).astype(np.int16)
    x0, y0, x1, y1 = c.text_box
    box = a[y0:y1, x0:x1]
    ink = np.all(np.abs(box - np.asarray(hex_to_rgb(c.text_colour))) <= 10, axis=2)
    assert ink.sum() > 200, "no text-coloured pixels in the text box"
    near = cv2.dilate(ink.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0
    bg = box[~near]
    assert bg.size > 0
    lb = relative_luminance(bg.astype(np.float32) / 255.0)
    lt = float(relative_luminance(np.asarray(hex_to_rgb(c.text_colour), np.float32) / 255.0))
    per_px = (np.maximum(lb, lt) + 0.05) / (np.minimum(lb, lt) + 0.05)
    return float(np.percentile(per_px, pct))


# --------------------------------------------------------------------------- sizes and layout


def test_four_sizes_exact(creatives):
    assert [c.size_name for c in creatives] == list(AD_SIZES)
    for c in creatives:
        assert c.png.mode == "RGB"
        assert c.png.size == AD_SIZES[c.size_name]
        x0, y0, x1, y1 = c.text_box
        W, H = c.png.size
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H


def test_text_not_over_product_and_product_not_cropped(creatives, studio):
    img, an = studio
    area_in = _product_mask(img).sum()
    for c in creatives:
        W, H = c.png.size
        prod = _product_mask(c.png)
        scale = min(W / N, H / N)
        # the whole product is there (fitted, not cropped, not covered by text)
        assert prod.sum() == pytest.approx(area_in * scale**2, rel=0.03), c.size_name
        pbox = _bbox(prod)
        assert not _intersects(c.text_box, pbox), (c.size_name, c.text_box, pbox)


def test_text_on_the_recommended_side(creatives):
    by = {c.size_name: c for c in creatives}
    for name in ("1080x1080", "1080x1350", "1080x1920"):  # analysis says top
        c = by[name]
        pbox = _bbox(_product_mask(c.png))
        assert c.text_box[3] <= pbox[1], name
    c = by["1200x628"]  # landscape: beside the product
    pbox = _bbox(_product_mask(c.png))
    assert c.text_box[0] >= pbox[2] or c.text_box[2] <= pbox[0]


def test_square_text_inside_zone(studio):
    img, an = studio
    (c,) = render_ads(img, an, DETAILS, AdParams(sizes="1080x1080"))
    z = an.text_zone.box
    s = 1080 / N
    x0, y0, x1, y1 = c.text_box
    assert x0 >= z.x0 * s - 1 and y0 >= z.y0 * s - 1 and x1 <= z.x1 * s + 1 and y1 <= z.y1 * s + 1


# --------------------------------------------------------------------------- contrast


def test_contrast_from_pixels(creatives):
    for c in creatives:
        assert c.contrast >= 4.5
        assert _pixel_contrast(c) >= 4.5, c.size_name


def test_bad_colour_hint_is_corrected(studio):
    img, an = studio
    bad = an.model_copy(update={"text_colour": "#d8d0c0"})  # nearly the background colour
    for c in render_ads(img, bad, DETAILS):
        assert c.text_colour != "#d8d0c0"
        assert c.contrast >= 4.5 and _pixel_contrast(c) >= 4.5, c.size_name


def test_scrim_on_busy_background():
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float32)
    busy = (128 + 90 * np.sin(xx / 9.0) * np.cos(yy / 7.0))[..., None] * np.ones(3, np.float32)
    img, box = _with_product(busy)
    an = _analysis(box, text_colour="#808080")
    out = render_ads(img, an, DETAILS)
    assert any(c.scrim for c in out)
    for c in out:
        assert c.contrast >= 4.5, c.size_name
        assert not _intersects(c.text_box, _bbox(_product_mask(c.png))), c.size_name


# --------------------------------------------------------------------------- wrapping and sizes


def test_long_headline_wraps_and_shrinks(studio):
    img, an = studio
    p = AdParams(min_font_px=28, max_headline_lines=4)
    short = render_ads(img, an, ProductDetails(headline="Linen shirts"), p)
    long_text = "Lightweight breathable linen shirts for hot summer days, relaxed fit in six colours"
    longs = render_ads(img, an, ProductDetails(headline=long_text), p)
    for s, lg in zip(short, longs):
        assert len(lg.headline_lines) >= 2, lg.size_name
        assert len(lg.headline_lines) <= p.max_headline_lines
        assert p.min_font_px <= lg.font_px < s.font_px, lg.size_name
        assert " ".join(lg.headline_lines) == long_text  # wrapped at spaces, nothing lost
        W, H = lg.png.size
        assert lg.text_box[2] <= W and lg.text_box[3] <= H


def test_overlong_headline_is_ellipsized_not_shrunk_below_min(studio):
    img, an = studio
    p = AdParams(min_font_px=40, max_headline_lines=2, sizes="1080x1080")
    (c,) = render_ads(img, an, ProductDetails(headline=" ".join(["extraordinary"] * 14)), p)
    assert c.font_px == 40
    assert len(c.headline_lines) <= 2 and c.headline_lines[-1].endswith("…")


def test_hangul_long_word_breaks_by_character():
    measure = lambda t: 10.0 * len(t)  # noqa: E731
    lines = ads._wrap(ads._units("가나다라마바사아자차카타파하"), 50, measure, allow_break=True)
    assert lines == ["가나다라마", "바사아자차", "카타파하"]
    assert ads._wrap(ads._units("가나다라마바사아자차카타파하"), 50, measure, allow_break=False) is None
    # CJK breaks anywhere, Hangul/Latin words at spaces; a lone dash stays with its word
    assert ads._units("여름 세일 — 시원한") == [("", "여름"), (" ", "세일 —"), (" ", "시원한")]
    assert [u for _, u in ads._units("限定商品")] == ["限", "定", "商", "品"]


# --------------------------------------------------------------------------- fonts


def _render(font, ch: str) -> bytes:
    im = Image.new("L", (80, 80))
    ImageDraw.Draw(im).text((10, 10), ch, font=font, fill=255)
    return im.tobytes()


def test_shipped_font_files_and_licence():
    fonts = Path(ads.FONT_DIR)
    for p in ads.SHIPPED_FONTS.values():
        assert p.is_file() and p.stat().st_size < 1_000_000
    ofl = (fonts / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE" in ofl and "NAVER" in ofl
    assert (fonts / "README.md").is_file()


def test_hangul_renders_real_glyphs(studio):
    headline = "여름 세일 — 시원한 린넨 셔츠"
    chain = ads.chain_for(headline, ads.font_chain("bold"))
    assert chain[0] == str(ads.SHIPPED_FONTS["bold"])  # the shipped font covers it all
    assert ads.renderable(headline, chain) == headline  # nothing dropped
    font = ads._font(chain[0], 64)
    notdef = _render(font, "\uffff")
    renders = {ch: _render(font, ch) for ch in set(headline.replace(" ", ""))}
    assert all(r != notdef and any(r) for r in renders.values())
    assert len(set(renders.values())) == len(renders)  # every syllable has its own glyph
    # and the ad itself: the headline is drawn (ink in the text box) and wraps sanely
    img, an = studio
    out = render_ads(img, an, ProductDetails(headline=headline, price="₩29,000"))
    for c in out:
        assert "".join(c.headline_lines).replace(" ", "") == headline.replace(" ", "")
        assert c.contrast >= 4.5 and _pixel_contrast(c) >= 4.5


def test_font_fallback_covers_hangul_with_latin_override():
    latin_only = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not Path(latin_only).is_file():
        pytest.skip("DejaVu Sans not installed")
    chain = ads.font_chain("bold", latin_only)
    assert chain[0] == latin_only
    assert not ads.covers(latin_only, "여")  # the .notdef comparison sees the gap ...
    assert ads.chain_for("여름 세일", chain)[0] == str(ads.SHIPPED_FONTS["bold"])  # ... and falls back
    assert ads.chain_for("Summer sale", chain)[0] == latin_only  # the override wins when it covers
    assert not ads.covers(ads.BUILTIN_FONT, "여")


def test_bad_font_path_is_a_clear_error(studio, tmp_path):
    img, an = studio
    with pytest.raises(ValueError, match="font_path"):
        render_ads(img, an, DETAILS, AdParams(font_path=str(tmp_path / "missing.ttf")))


def test_unrenderable_characters_are_dropped_not_boxed(studio):
    img, an = studio
    out = render_ads(img, an, ProductDetails(headline="Party time \U0001fae8\U0001fae8"), AdParams(sizes="1080x1080"))
    assert out[0].headline_lines == ["Party time"]
    assert "\U0001fae8" in out[0].html  # still in the accessible text


# --------------------------------------------------------------------------- price badge


def _pill_present(c: ads.AdCreative) -> bool:
    a = np.asarray(c.png).astype(np.int16)
    x0, y0, x1, y1 = c.text_box
    ink = np.all(np.abs(a[y0:y1, x0:x1] - np.asarray(hex_to_rgb(c.text_colour))) <= 10, axis=2)
    # glyph strokes are thinner than 25 px; a filled pill survives the erosion
    return bool(cv2.erode(ink.astype(np.uint8), np.ones((25, 25), np.uint8)).any())


def test_price_badge(studio):
    img, an = studio
    with_price = render_ads(img, an, DETAILS)
    no_price = render_ads(img, an, DETAILS.model_copy(update={"price": ""}))
    plain = render_ads(img, an, DETAILS, AdParams(price_badge=False))
    for a, b, c in zip(with_price, no_price, plain):
        assert _pill_present(a), a.size_name
        assert not _pill_present(b) and not _pill_present(c), a.size_name
        assert a.text_box[3] - a.text_box[1] > b.text_box[3] - b.text_box[1]


# --------------------------------------------------------------------------- seams


def test_extended_background_has_no_seam(creatives):
    by = {c.size_name: np.asarray(c.png) for c in creatives}
    for name in ("1080x1350", "1080x1920"):
        a = by[name]
        for strip in (a[:, :48], a[:, -48:]):  # side strips: no text, no product
            prof = strip.astype(np.float32).mean(axis=1)  # (H, 3)
            step = np.abs(np.diff(prof, axis=0)).max()
            assert step < 1.0, (name, step)
    a = by["1200x628"]
    for strip in (a[:28], a[-28:]):  # top/bottom strips
        prof = strip.astype(np.float32).mean(axis=0)  # (W, 3)
        step = np.abs(np.diff(prof, axis=0)).max()
        assert step < 1.0, step


def test_extension_continues_the_colours(studio):
    """The band next to the photo starts with the photo's own edge colours."""
    img, an = studio
    (c,) = render_ads(img, an, DETAILS, AdParams(sizes="1200x628"))
    a = np.asarray(c.png).astype(np.float32)
    src = np.asarray(img.resize((628, 628), Image.Resampling.BOX)).astype(np.float32)
    if _bbox(_product_mask(c.png))[0] < 1200 - 628:  # photo at the left, band on the right
        first, edge, band = a[:, 628], src[:, -1], a[:, 628:]
    else:
        first, edge, band = a[:, 1200 - 628 - 1], src[:, 0], a[:, : 1200 - 628]
    rows = np.ones(628, bool)
    rows[c.text_box[1] : c.text_box[3]] = False  # the text may reach into the photo beside the product
    assert np.abs(first - edge)[rows].max() < 3.0
    assert np.abs(band[rows].mean(axis=(0, 1)) - edge[rows].mean(axis=0)).max() < 12


# --------------------------------------------------------------------------- params


def test_params_validation():
    assert AdParams(sizes=" 1200x628 , 1080x1080,1200x628").sizes == "1200x628,1080x1080"
    for bad in ("", "1080", "1080x10", "99999x10", "axb"):
        with pytest.raises(ValueError):
            AdParams(sizes=bad)
    with pytest.raises(ValueError):
        AdParams(unknown=1)
    assert AdParams().size_list() == list(AD_SIZES.items())


def test_custom_size_and_non_square_input(studio):
    img, an = studio
    wide = img.crop((0, 100, N, N - 100))  # 1024 x 824 photo, analysis still in 1024x1024 pixels
    an2 = an.model_copy(update={"height": 824, "product_box": an.product_box.model_copy(
        update={"y0": an.product_box.y0 - 100, "y1": an.product_box.y1 - 100}),
        "text_zone": an.text_zone.model_copy(update={"box": an.text_zone.box.model_copy(update={"y0": 0, "y1": 250})})})
    out = render_ads(wide, an2, DETAILS, AdParams(sizes="800x800,300x250"))
    assert [c.png.size for c in out] == [(800, 800), (300, 250)]
    for c in out:
        assert c.contrast >= 4.5


def test_shipped_fonts_alone_cover_prices_and_european_names(monkeypatch):
    """With no system fonts at all, €, accents and Hangul still come from shipped fonts."""
    monkeypatch.setattr(ads, "SYSTEM_FONTS", {"bold": (), "regular": ()})
    ads.font_chain.cache_clear()
    ads._runs.cache_clear()
    try:
        chain = ads.font_chain("bold")
        assert all(Path(p).parent == ads.FONT_DIR for p in chain[:-1])
        for text in ("€14.50", "Crème brûlée", "Grüße aus Köln ®", "여름 세일 ₩39,000"):
            runs = ads._runs(text, chain)
            rendered = "".join(s for _, s in runs).replace(" ", "")
            assert rendered == text.replace(" ", ""), (text, runs)
            assert all(p != ads.BUILTIN_FONT for p, _ in runs)
    finally:
        ads.font_chain.cache_clear()
        ads._runs.cache_clear()
