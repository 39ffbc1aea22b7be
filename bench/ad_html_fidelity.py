"""Ad HTML fidelity: the live-text page in headless Chromium against the PNG, per size and sample.

    python bench/ad_html_fidelity.py [--out DIR]

Runs the six bundled sample products through the pipeline, loads each `ads/<size>.html` in
headless Chromium at its size and prints, per page: SSIM of the screenshot against the PNG,
the largest distance (px) of any DOM text box edge from the layout's box (`TextLine.box`;
the bars are SSIM >= 0.95 and <= 4 px), the page size, and whether the headline is visible,
selectable text. The baseline is the v1 page this replaced: an <img> of the PNG (beside it)
with the text in a visually hidden caption, measured the same way. With --out, the
screenshots and pages are written there to look at. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import html
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from adgen_dagster.demo import SAMPLES, sample_catalog  # noqa: E402
from adgen_dagster.imaging.details import ProductDetails  # noqa: E402
from adgen_dagster.pipeline import ad_creatives_of, run_product  # noqa: E402
from bench._util import print_table  # noqa: E402
from tests.ad_render import check_page  # noqa: E402
from tests.chromium import Chromium  # noqa: E402


def v1_page(c, details: ProductDetails) -> str:
    """The page before issue 17, as it was generated: the PNG beside it, the text hidden."""
    e = lambda s: html.escape(s, quote=True)  # noqa: E731
    head = " ".join(ln.text for ln in c.layout.lines if ln.element == "head")
    W, H = c.png.size
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'">
<style>html, body {{ margin: 0; background: #f2f2f2; }} figure.ad {{ margin: 0 auto; max-width: {W}px; }}
figure.ad img {{ display: block; width: 100%; height: auto; }}
.visually-hidden {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
clip-path: inset(50%); white-space: nowrap; }}</style></head><body><main><figure class="ad">
<img src="{c.size_name}.png" width="{W}" height="{H}" alt="{e(details.name)}">
<figcaption class="visually-hidden"><h1 class="headline">{e(head)}</h1>
<p class="subline">{e(details.subline)}</p><p class="price"><span>{e(details.price)}</span></p></figcaption>
</figure></main></body></html>"""


def _text(check) -> str:
    """'live': selectable DOM text drawn where the layout put it; 'hidden': in the DOM only."""
    h = check.dom["headline"]
    shown = h["visibility"] == "visible" and h["selected"] and check.box_error <= 4
    return "live" if shown else "hidden"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write pages and screenshots here")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ad-html-"))
    rows, worst = [], {"ssim": 1.0, "box": 0.0}
    with Chromium() as browser:
        for row in sample_catalog():
            pid = Path(row["upload"]).stem
            details = ProductDetails(**(row["details"] or {}))
            res = run_product((SAMPLES / row["photo"]).read_bytes(), row["upload"], pid, details)
            for c in ad_creatives_of(res):
                d = out / pid / "new"
                old = out / pid / "v1"
                d.mkdir(parents=True, exist_ok=True)
                old.mkdir(parents=True, exist_ok=True)
                page = d / f"{c.size_name}.html"  # alone in its folder
                page.write_text(c.html, encoding="utf-8")
                new = check_page(page.as_uri(), c, browser)
                buf = io.BytesIO()
                c.png.save(buf, "PNG")
                (old / f"{c.size_name}.png").write_bytes(buf.getvalue())
                (old / f"{c.size_name}.html").write_text(v1_page(c, details), encoding="utf-8")
                base = check_page((old / f"{c.size_name}.html").as_uri(), c, browser)
                Image.fromarray(new.screenshot).save(d / f"{c.size_name}.screenshot.png")
                worst["ssim"] = min(worst["ssim"], new.ssim)
                worst["box"] = max(worst["box"], new.box_error)
                lang = "ko" if 'lang="ko"' in c.html[:100] else "en"
                rows.append([pid, lang, c.size_name, f"{new.ssim:.4f}", f"{new.box_error:.2f}",
                             f"{len(c.html) / 1024:.0f}", _text(new), f"{base.ssim:.4f}",
                             f"{(len(v1_page(c, details)) + len(buf.getvalue())) / 1024:.0f}", _text(base)])
    print_table(["product", "lang", "size", "SSIM", "box px", "KiB", "headline",
                 "v1 SSIM", "v1 KiB (+PNG)", "v1 headline"], rows,
                title="Ad HTML in headless Chromium vs the PNG (new live-text page | v1 <img> page)")
    print(f"\nworst SSIM {worst['ssim']:.4f} (bar >= 0.95), worst text box error {worst['box']:.2f} px (bar <= 4)")
    print(f"pages and screenshots: {out}")
    return 0 if worst["ssim"] >= 0.95 and worst["box"] <= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
