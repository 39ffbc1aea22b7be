"""The ad HTML page without a browser: escaping, self-containment, the embedded fonts and
picture, and CSS that comes from the same layout as the PNG. (In a real browser:
tests/test_ad_render.py and tests/test_html_safety.py.)"""

from __future__ import annotations

import base64
import html.parser
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adgen_dagster.imaging import ad_html, ads
from adgen_dagster.imaging.ad_layout import css_metrics, font_units, line_px
from adgen_dagster.imaging.ads import AD_SIZES, AdParams, render_ads
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.imaging.webfont import sfnt_tables, unwoff, woff
from tests.test_ads import DETAILS, _analysis, _studio, _with_product

FONTS = ads.FONT_DIR


@pytest.fixture(scope="module")
def studio():
    img, box = _with_product(_studio())
    return img, _analysis(box)


class Page(html.parser.HTMLParser):
    """Text of each element class, every attribute, and the style sheet of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.text: dict[str, str] = {}
        self.attrs: list[tuple[str, str, str]] = []
        self.style = ""
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.attrs += [(tag, a, v or "") for a, v in attrs]
        if tag not in ("br", "img", "meta"):
            self._open.append(dict(attrs).get("class") or (tag if tag in ("style", "title") else ""))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        key = next((k for k in reversed(self._open) if k), "")  # the nearest element with a class
        if key == "style":
            self.style += data
        elif key:
            self.text[key] = self.text.get(key, "") + data


def test_product_text_is_escaped_and_the_page_self_contained(studio):
    img, an = studio
    hostile = "<script>alert(\"x\")</script> & \"quotes\" 'single'"
    d = ProductDetails(name=hostile, headline=hostile, subline="<b>bold</b>", price="<img src=x onerror=alert(1)>")
    for c in render_ads(img, an, d):
        h = c.html
        assert "<script" not in h.lower() and "<b>" not in h and "<img src=x" not in h
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34; &#39;single&#39;" in h
        page = Page(h)
        assert page.text["headline"] == hostile and page.text["title"] == hostile  # text, not markup
        assert page.text["subline"] == "<b>bold</b>" and page.text["price"] == "<img src=x onerror=alert(1)>"
        assert ("img", "alt", hostile) in page.attrs
        # Every reference is a data: URI (nothing next to the page, nothing remote).
        refs = [v for _, a, v in page.attrs if a in ("src", "href", "srcset", "action", "data", "poster")]
        refs += re.findall(r"url\(([^)]*)\)", page.style)
        assert refs and all(r.startswith(("data:image/jpeg;base64,", "data:font/woff;base64,")) for r in refs), refs
        assert "@import" not in page.style and not [a for _, a, _ in page.attrs if a.startswith("on")]
        csp = dict((a, v) for t, a, v in page.attrs if t == "meta" and a == "content" and "default-src" in v)
        assert csp and "default-src 'none'" in csp["content"] and "script-src" not in csp["content"]
        W, H = AD_SIZES[c.size_name]
        assert ("img", "width", str(W)) in page.attrs and ("img", "height", str(H)) in page.attrs


def test_page_has_all_text_and_fallback_headline(studio):
    img, an = studio
    h = render_ads(img, an, DETAILS, AdParams(sizes="1080x1080"))[0].html
    page = Page(h)
    assert (page.text["headline"], page.text["subline"], page.text["price"]) == \
        ("Summer linen shirts", "Breathable, relaxed fit", "$39")
    assert ("img", "alt", "Linen shirt") in page.attrs
    (c,) = render_ads(img, an, ProductDetails(), AdParams(sizes="1080x1080"))
    assert c.headline_lines == ["New arrival"] and Page(c.html).text["headline"] == "New arrival"
    (c,) = render_ads(img, an, ProductDetails(subline="Only this"), AdParams(sizes="1080x1080"))
    assert c.headline_lines == ["Only this"] and "subline" not in Page(c.html).text  # promoted
    ko = render_ads(img, an, ProductDetails(headline="여름 세일\n단 3일"), AdParams(sizes="1080x1080"))[0].html
    assert '<html lang="ko">' in ko and '<h1 class="headline">여름 세일<br>단 3일</h1>' in ko


def test_picture_is_the_ad_without_its_text(studio):
    img, an = studio
    for c in render_ads(img, an, DETAILS):
        uri = re.search(r'<img class="picture" src="data:image/jpeg;base64,([^"]+)"', c.html).group(1)
        pic = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB")).astype(int)
        png = np.asarray(c.png).astype(int)
        assert pic.shape == png.shape
        x0, y0, x1, y1 = c.text_box
        outside = np.ones(png.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        assert np.abs(pic - png)[outside].mean() < 1.5  # the same picture (JPEG-compressed) ...
        inside = np.abs(pic - png)[y0:y1, x0:x1].max(axis=2)
        assert (inside > 60).mean() > 0.05  # ... with no text where the PNG has its text


def test_css_comes_from_the_layout(studio):
    img, an = studio
    for c in render_ads(img, an, DETAILS):
        L, css = c.layout, Page(c.html).style
        x0, y0, x1, y1 = L.zone
        pad = int(re.search(r"\.zone \{[^}]*padding: (\d+)px", css).group(1))
        zone = re.search(r"\.zone \{ position: absolute; left: (-?\d+)px; top: (-?\d+)px; width: (\d+)px; "
                         r"height: (\d+)px;", css).groups()
        assert [int(v) for v in zone] == [x0 - pad, y0 - pad, x1 - x0, y1 - y0]
        for cls, size in (("headline", L.head_size), ("subline", L.sub_size), ("price", L.price_size)):
            rule = re.search(r"\." + cls + r" \{([^}]*)\}", css).group(1)
            assert f"font-size: {size}px;" in rule
        assert f"line-height: {line_px(L.head_size)}px;" in re.search(r"\.headline \{([^}]*)\}", css).group(1)
        assert f"color: {L.colour};" in css and f"background: {L.price_fill};" in css
        assert f"text-align: {L.align};" in css
        assert {ln.element for ln in L.lines} == {"head", "sub", "price"}
        assert [ln.text for ln in L.lines if ln.element == "head"] == c.headline_lines


def test_page_breaks_lines_by_script(studio):
    img, an = studio
    one = AdParams(sizes="1080x1080")
    css = lambda d: Page(render_ads(img, an, d, one)[0].html).style  # noqa: E731
    assert re.search(r"\.headline \{[^}]*word-break: keep-all;", css(ProductDetails(headline="여름 세일 시작")))
    assert re.search(r"\.headline \{[^}]*word-break: keep-all;", css(ProductDetails(headline="Summer sale")))
    assert re.search(r"\.headline \{[^}]*word-break: normal;", css(ProductDetails(headline="夏のセール開催中")))


def test_woff_is_the_shipped_font_unchanged():
    for name in ("NanumSquareB.ttf", "NanumSquareR.ttf", "NotoSans-Bold.ttf", "NotoSans-Regular.ttf"):
        path = FONTS / name
        data = woff(str(path))
        version, tables = sfnt_tables(path.read_bytes())
        v2, unpacked = unwoff(data)
        assert v2 == version and unpacked == {t: raw for t, (raw, _) in tables.items()}  # byte for byte
        assert data[:4] == b"wOFF" and data[24:44] == bytes(20)  # no metadata, no private block
        assert len(data) < 0.75 * path.stat().st_size


def test_page_embeds_the_fonts_its_text_uses_with_the_licence(studio):
    img, an = studio
    one = AdParams(sizes="1080x1080")
    page = render_ads(img, an, ProductDetails(headline="비타민 E", subline="365 capsules", price="€14.50"), one)[0].html
    css = Page(page).style
    faces = re.findall(r'@font-face \{ font-family: "([^"]+)"; src: url\(data:font/woff;base64,([^)]+)\)', css)
    by_family = {f: base64.b64decode(b) for f, b in faces}
    assert set(by_family) == {"adgen-NanumSquareB", "adgen-NanumSquareR", "adgen-NotoSans-Bold"}
    assert by_family["adgen-NanumSquareB"] == woff(str(FONTS / "NanumSquareB.ttf"))  # whole, not a subset
    assert re.search(r'\.price \{ font-family: "adgen-NotoSans-Bold"', css)  # NanumSquare has no €
    assert re.search(r'\.headline \{ font-family: "adgen-NanumSquareB"', css)
    assert "SIL Open Font License" in css and "Reserved Font Name" in css and "NAVER" in css
    # Without a subline, no regular weight is embedded (smaller page).
    plain = render_ads(img, an, ProductDetails(headline="Summer sale"), one)[0].html
    assert "adgen-NanumSquareR" not in plain and "adgen-NanumSquareB" in plain


def test_font_metrics_are_read_from_the_font_files():
    assert font_units(str(FONTS / "NanumSquareB.ttf")) == (1000, 850, 255)
    assert font_units(str(FONTS / "NotoSans-Regular.ttf")) == (1000, 1069, 293)
    assert css_metrics(str(FONTS / "NanumSquareB.ttf"), 104) == (88, 27)  # 88.4 and 26.52, rounded
    assert css_metrics(str(FONTS / "NotoSans-Bold.ttf"), 97) == (104, 28)
    assert font_units(ads.BUILTIN_FONT) == (1000, 850, 255)  # no file: NanumSquare's proportions


def test_ellipsized_headline_is_clamped_in_the_page_too(studio):
    img, an = studio
    long = " ".join(["Extraordinarily"] * 12)
    (c,) = render_ads(img, an, ProductDetails(headline=long), AdParams(sizes="1080x1080", max_headline_lines=2))
    assert c.headline_lines[-1].endswith("…") and len(c.headline_lines) == 2
    assert re.search(r"\.headline \{ display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2;",
                     Page(c.html).style)
    assert Page(c.html).text["headline"] == long  # the page keeps the whole text


def test_page_template_ships_with_the_package():
    import tomllib

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "imaging/templates/*" in cfg["tool"]["setuptools"]["package-data"]["adgen_dagster"]
    assert (Path(ad_html.__file__).parent / "templates" / "ad.html.j2").is_file()
