"""The ad HTML in headless Chromium looks like the PNG, puts each line where the layout put it,
keeps its text live, renders the same moved alone, and handles an edited headline.

Two bundled sample products go through the real pipeline (a Korean and a Latin one); each
of the four sizes is loaded at its size (tests/ad_render.py: the DevTools protocol on a pipe,
the page unmodified), screenshot against the PNG (SSIM) and the DOM's line boxes against the
layout's (`TextLine.box`). Needs Chromium (`.ci/run` installs Debian's); skipped without it.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from adgen_dagster.demo import SAMPLES, sample_catalog
from adgen_dagster.imaging.ad_layout import baseline_in_line, css_metrics, line_px
from adgen_dagster.imaging.ad_fonts import FONT_DIR
from adgen_dagster.imaging.ad_params import AD_SIZES
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.pipeline import ad_creatives_of, run_product
from tests.ad_render import check_page
from tests.chromium import CHROMIUM, Chromium

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (.ci/run installs Debian's `chromium`)")

SAMPLE = {"ko": "gu10-led-bulb.jpg", "en": "starter-duffel-bag.jpg"}
SSIM_MIN, BOX_PX = 0.95, 4.0


@pytest.fixture(scope="module")
def creatives():
    rows = {r["upload"]: r for r in sample_catalog()}
    out = {}
    for lang, upload in SAMPLE.items():
        row = rows[upload]
        res = run_product((SAMPLES / row["photo"]).read_bytes(), upload, Path(upload).stem,
                          ProductDetails(**row["details"]))
        out[lang] = {c.size_name: c for c in ad_creatives_of(res)}
    return out


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def _write(tmp_path: Path, c, html: str | None = None) -> Path:
    page = tmp_path / f"{c.size_name}.html"
    page.write_text(html if html is not None else c.html, encoding="utf-8")
    return page


@pytest.mark.parametrize("size", list(AD_SIZES))
@pytest.mark.parametrize("lang", list(SAMPLE))
def test_page_looks_like_the_png_with_the_text_where_the_layout_put_it(creatives, browser, tmp_path, lang, size):
    c = creatives[lang][size]
    check = check_page(_write(tmp_path, c).as_uri(), c, browser)
    assert not check.errors, check.errors
    assert check.ssim >= SSIM_MIN, f"{lang} {size}: SSIM {check.ssim:.4f}"
    assert check.box_error <= BOX_PX, f"{lang} {size}: a text box is {check.box_error:.2f} px off the layout's"
    head = check.dom["headline"]
    text = " ".join(ln.text for ln in c.layout.lines if ln.element == "head")
    assert "".join(head["text_nodes"]).split() == text.split()  # the headline is DOM text ...
    assert head["selected"].split() == text.split()  # ... that selects as text ...
    assert head["visibility"] == "visible" and head["opacity"] == "1" and head["user_select"] != "none"
    assert head["loaded"] and all(status == "loaded" for _, status in check.dom["fonts"])  # ... in the embedded font
    assert check.dom["scale"] in ("none", "1")  # the unedited block is not shrunk


def test_page_moved_alone_renders_the_same(creatives, browser, tmp_path):
    c = creatives["ko"]["1080x1350"]
    beside = tmp_path / "with_png"
    beside.mkdir()
    c.png.save(beside / f"{c.size_name}.png")
    alone = tmp_path / "elsewhere" / "deeper"
    alone.mkdir(parents=True)
    first = check_page(_write(beside, c).as_uri(), c, browser)
    moved = check_page(_write(alone, c).as_uri(), c, browser)
    assert list(alone.iterdir()) == [alone / f"{c.size_name}.html"]
    assert np.array_equal(first.screenshot, moved.screenshot)
    assert first.dom["lines"] == moved.dom["lines"] and moved.box_error <= BOX_PX


BREAKS_JS = """(() => {
  const h = document.querySelector(".headline"), t = h.firstChild, s = t.data, r = document.createRange();
  const zone = document.querySelector(".zone").getBoundingClientRect(), pad = parseFloat(getComputedStyle(document.querySelector(".zone")).paddingTop);
  let prev = -1, prevTop = null; const breaks = [], rects = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === " ") continue;
    r.setStart(t, i); r.setEnd(t, i + 1);
    const q = r.getBoundingClientRect();
    rects.push([q.left, q.top, q.right, q.bottom]);
    if (prevTop !== null && q.top > prevTop + 1) breaks.push(s.slice(prev + 1, i));
    prev = i; prevTop = q.top;
  }
  const b = document.querySelector(".block").getBoundingClientRect();
  return {breaks, rects, block: [b.left, b.top, b.right, b.bottom],
          zone: [zone.left + pad, zone.top + pad, zone.right - pad, zone.bottom - pad],
          scale: parseFloat(getComputedStyle(document.querySelector(".block")).scale)};
})()"""

EDITS = [
    ("ko", "1080x1350", "전기요금은 확 줄이고 밝기는 그대로, 여름 내내 시원하게 쓰는 고효율 LED 전구를 지금 특가로 만나보세요"),
    ("en", "1080x1080", "Weekend ready: the roomy duffel bag that goes everywhere with you, from the gym to the beach"),
    ("ko", "1200x628", "전기요금은 확 줄이고 밝기는 그대로, 여름 내내 시원하게"),
    ("en", "1200x628", "Weekend ready duffel, now in grey"),
]


@pytest.mark.parametrize("lang,size,text", EDITS)
def test_edited_headline_wraps_at_spaces_inside_the_zone_and_shrinks_to_fit(creatives, browser, tmp_path, lang, size, text):
    c = creatives[lang][size]
    edited, n = re.subn(r'(<h1 class="headline">).*?(</h1>)', lambda m: m.group(1) + text + m.group(2), c.html)
    assert n == 1
    browser.open(_write(tmp_path, c, edited).as_uri(), c.layout.width, c.layout.height)
    got = browser.evaluate(BREAKS_JS)
    assert got["breaks"] and all(" " in gap for gap in got["breaks"]), got["breaks"]  # Korean and Latin: at spaces
    x0, y0, x1, y1 = got["zone"]
    for q in got["rects"] + [got["block"]]:  # every character, and the whole block, inside the text zone
        assert x0 - 1 <= q[0] and q[2] <= x1 + 1 and y0 - 1 <= q[1] and q[3] <= y1 + 1, (q, got["zone"])
    natural = (got["block"][3] - got["block"][1]) / got["scale"]  # the block's height before scaling
    if natural > y1 - y0 + 1:  # too tall for the zone at the layout's sizes: the block shrank, within bounds
        assert 28 / c.layout.head_size - 1e-3 <= got["scale"] < 1.0
        assert got["block"][3] - got["block"][1] >= 0.97 * (y1 - y0)  # and fills the zone's height
    else:
        assert got["scale"] == 1.0


def test_css_line_model_matches_chromium(browser, tmp_path):
    """Ascent, descent and baseline of `ad_layout` are Chromium's, for every shipped font and
    a range of sizes (the baselines of the PNG depend on it)."""
    fonts = {"NB": "NanumSquareB.ttf", "NR": "NanumSquareR.ttf", "OB": "NotoSans-Bold.ttf", "OR": "NotoSans-Regular.ttf"}
    faces = "".join(f'@font-face {{ font-family: "{k}"; src: url(data:font/ttf;base64,'
                    f'{base64.b64encode((FONT_DIR / f).read_bytes()).decode()}); }}' for k, f in fonts.items())
    sizes = list(range(12, 121, 7)) + [97, 104]
    rows = "".join(f'<div class="t" style="font-family:{k};font-size:{s}px;line-height:{line_px(s)}px">'
                   f'<span class="x">Hg 한</span><span class="b"></span></div>' for k in fonts for s in sizes)
    page = tmp_path / "metrics.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><style>{faces} body{{margin:0}} .t{{white-space:nowrap}}"
                    f" .b{{display:inline-block;width:1px;height:0}}</style>{rows}", encoding="utf-8")
    browser.open(page.as_uri(), 800, 600)
    got = json.loads(browser.evaluate("""JSON.stringify([...document.querySelectorAll('.t')].map(e => {
      const top = e.getBoundingClientRect().top, r = document.createRange();
      r.selectNodeContents(e.querySelector('.x').firstChild);
      const q = r.getClientRects()[0], b = e.querySelector('.b').getBoundingClientRect();
      return [q.top - top, q.height, b.top - top]; }))"""))
    want = []
    for f in fonts.values():
        for s in sizes:
            a, d = css_metrics(str(FONT_DIR / f), s)
            base = baseline_in_line(str(FONT_DIR / f), s, line_px(s))
            want.append([base - a, a + d, base])
    assert got == want
