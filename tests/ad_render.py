"""Render check for the ad HTML: the page in headless Chromium against the PNG and the layout.

`check_page(html_path, creative)` loads the page at the ad's size (unmodified, CSP and all),
takes a screenshot, and reads from the DOM where the browser put each line of text
(`Range.getClientRects()` of the text nodes: one rect per line, advance width by the font's
ascent + descent, the same definition as `TextLine.box`) and whether the headline is a
visible, selectable text node. Used by tests/test_ad_render.py and bench/ad_html_fidelity.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from tests.chromium import Chromium

MEASURE_JS = """(() => {
  const out = {lines: {}};
  for (const [el, sel] of [["head", ".headline"], ["sub", ".subline"], ["price", ".price > span"]]) {
    const e = document.querySelector(sel);
    if (!e) continue;
    const rects = [], clip = e.getBoundingClientRect();
    const clamped = getComputedStyle(e).webkitLineClamp !== "none";
    const walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    for (let n; (n = walk.nextNode()); ) {
      const r = document.createRange();
      r.selectNodeContents(n);
      for (const q of r.getClientRects())  // (lines a line-clamp hides are laid out, but not shown)
        if (q.width > 0 && !(clamped && q.top >= clip.bottom)) rects.push([q.left, q.top, q.right, q.bottom]);
    }
    out.lines[el] = rects;
  }
  const pill = document.querySelector(".price > span");
  if (pill) { const q = pill.getBoundingClientRect(); out.pill = [q.left, q.top, q.right, q.bottom]; }
  const h = document.querySelector(".headline");
  const cs = getComputedStyle(h);
  out.headline = {
    text_nodes: [...h.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.data),
    user_select: cs.userSelect, visibility: cs.visibility, opacity: cs.opacity, display: cs.display,
    font: cs.fontFamily, loaded: document.fonts.check(cs.fontSize + " " + cs.fontFamily.split(",")[0]),
  };
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.selectAllChildren(h);
  out.headline.selected = sel.toString();
  sel.removeAllRanges();
  out.fonts = [...document.fonts].map(f => [f.family, f.status]);
  const block = document.querySelector(".block");
  out.scale = block ? getComputedStyle(block).scale : "none";
  return out;
})()"""


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-size RGB images on their luma (Wang et al. 2004: Gaussian window
    sigma 1.5, K1 0.01, K2 0.03)."""
    def luma(x):
        return cv2.cvtColor(np.ascontiguousarray(x[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float64)

    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


@dataclass
class PageCheck:
    screenshot: np.ndarray  # RGB, the ad's size
    dom: dict
    ssim: float = 0.0
    box_error: float = float("inf")  # largest distance of any DOM text box edge from the layout's
    errors: list[str] = field(default_factory=list)  # lines that did not pair up


def box_error(layout, dom: dict) -> tuple[float, list[str]]:
    worst, problems = 0.0, []
    for el in ("head", "sub", "price"):
        want = layout.boxes(el)
        got = dom["lines"].get(el, [])
        if len(want) != len(got):
            problems.append(f"{el}: layout has {len(want)} lines, the page {len(got)}")
            worst = float("inf")
            continue
        for w, g in zip(want, got):
            worst = max(worst, *(abs(a - b) for a, b in zip(w, g)))
    if layout.price and layout.price.badge:
        pb = layout.price
        got = dom.get("pill")
        if got is None:
            problems.append("price pill missing")
            worst = float("inf")
        else:
            worst = max(worst, *(abs(a - b) for a, b in zip((pb.x, pb.y, pb.x + pb.w, pb.y + pb.h), got)))
    return worst, problems


def check_page(url: str, creative, browser: Chromium | None = None) -> PageCheck:
    """Load `url` at the creative's size and compare it with its PNG and layout."""
    L = creative.layout
    own = browser is None
    browser = browser or Chromium()
    try:
        browser.open(url, L.width, L.height)
        dom = browser.evaluate(MEASURE_JS)
        shot = np.asarray(Image.open(io.BytesIO(browser.screenshot(L.width, L.height))).convert("RGB"))
    finally:
        if own:
            browser.close()
    check = PageCheck(shot, dom)
    check.ssim = ssim(shot, np.asarray(creative.png))
    check.box_error, check.errors = box_error(L, dom)
    return check
