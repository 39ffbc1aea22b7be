"""The ad HTML is safe to open in a browser: product text from a hostile sidecar is shown as
text (no script runs, no markup is created) and the page fetches nothing from anywhere.

Checked in a real browser, headless Chromium: each page is loaded from disk with a local
HTTP server standing in for "anywhere else"; a script that ran would change the title or
mark the <body> (visible in --dump-dom), and a fetch would reach that server. Two control
pages prove the checks can fail: the same payload without escaping and without the CSP
does run and does fetch; the same payload injected raw into the real page (as an escaping
bug would) is stopped by the page's Content-Security-Policy.
"""

from __future__ import annotations

import html.parser
import http.server
import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

from adgen_dagster.imaging.ads import AdParams, render_ads
from adgen_dagster.imaging.analyze import analyze_classical
from adgen_dagster.imaging.details import parse_details
from tests.chromium import BASE_FLAGS, CHROMIUM
from tests.imagegen import product_photo

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (.ci/run installs Debian's `chromium`)")

MARK = "data-pwned"


def payload(beacon: str) -> dict[str, str]:
    """What a hostile sidecar puts into the product text: scripts, handlers, quotes, fetches."""
    return {
        "headline": f"<script>document.title='pwned';document.body.setAttribute('{MARK}','script')</script>",
        "subline": f"<img src=x onerror=\"document.body.setAttribute('{MARK}','onerror')\"> \"quoted\" 'single' &",
        "name": f"<img src='{beacon}/img'><link rel=stylesheet href='{beacon}/css'><iframe src='{beacon}/frame'></iframe>",
        "price": "<b>$5</b>'\"",
    }


@pytest.fixture
def beacon():
    """A local HTTP server that records every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"x")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "div", "span", "img", "h1", "p", "br"}


class Markup(html.parser.HTMLParser):
    """Every element and attribute of a page (text content is not markup)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, [(a, v or "") for a, v in attrs]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def dump_dom(pages: list[Path], profile_root: Path) -> list[str]:
    """Load each page in headless Chromium (in parallel, a fresh profile each) and return the
    DOM after scripts, loads and error handlers have had their time."""
    procs = []
    for i, page in enumerate(pages):
        procs.append(subprocess.Popen(
            [CHROMIUM, *BASE_FLAGS, f"--user-data-dir={profile_root / f'profile{i}'}",
             "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True))
    out = []
    for p in procs:
        try:
            stdout, _ = p.communicate(timeout=90)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 0, f"chromium exited with {p.returncode}"
        out.append(stdout.decode("utf-8"))
    return out


def test_hostile_sidecar_text_is_inert_in_a_real_browser(tmp_path, beacon):
    url, hits = beacon
    fields = payload(url)
    hostile = "".join(fields.values())
    sidecar = json.dumps(fields).encode()
    details = parse_details(sidecar, "hostile.jpg.json")  # the real path: sidecar bytes -> details
    photo = product_photo((256, 256))
    [ad] = render_ads(photo, analyze_classical(photo), details, AdParams(sizes="320x320"))
    real = tmp_path / "320x320.html"  # alone: the page embeds its picture and fonts
    real.write_text(ad.html, encoding="utf-8")

    # Static checks: one CSP that forbids scripts and every fetch but data: images and fonts,
    # and no URL anywhere in the markup but the page's own embedded picture and fonts.
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', ad.html)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)
    assert "'self'" not in csp.group(1) and "http" not in csp.group(1)
    tags = Markup()
    tags.feed(ad.html)
    assert {t for t, _ in tags.seen} <= SAFE_TAGS, {t for t, _ in tags.seen} - SAFE_TAGS
    urls = [(t, a, v[:23]) for t, attrs in tags.seen for a, v in attrs if a in ("src", "href", "srcset", "action", "data", "poster")]
    assert urls == [("img", "src", "data:image/jpeg;base64,")]  # the ad's own picture, embedded
    assert not [a for _, attrs in tags.seen for a, _ in attrs if a.startswith("on")]
    style_urls = re.findall(r"url\(([^)]{0,22})", tags.style)
    assert style_urls and set(style_urls) == {"data:font/woff;base64,"} and "@import" not in tags.style

    # Controls: the raw payload without CSP runs and fetches (so the checks below can fail) ...
    control = tmp_path / "control.html"
    control.write_text(f"<!doctype html><html><head><title>ok</title></head><body>{hostile}</body></html>")
    # ... and the raw payload inside the real page (as if escaping had failed) is stopped by its CSP.
    injected = tmp_path / "injected.html"
    assert ad.html.count("<body>") == 1
    injected.write_text(ad.html.replace("<body>", f"<body>{hostile}", 1), encoding="utf-8")

    dom_control, dom_real, dom_injected = dump_dom([control, real, injected], tmp_path)

    assert "<title>pwned</title>" in dom_control and f'{MARK}="' in dom_control
    assert {"/img", "/css", "/frame"} <= set(hits), hits  # the control did fetch
    hits.clear()

    for dom in (dom_real, dom_injected):
        assert "pwned</title>" not in dom and f'{MARK}="' not in dom  # no script, no handler ran
    assert hits == [], f"the ad page fetched {hits}"
    # The hostile text is there, as text: escaped in the DOM, never elements.
    assert "&lt;script&gt;document.title='pwned'" in dom_real and "<script" not in dom_real.lower()
    assert "&lt;iframe src=" in dom_real and "<iframe" not in dom_real.lower()
    title = re.search(r"<title>(.*?)</title>", dom_real, re.S).group(1)
    assert title.startswith("&lt;script&gt;document.title=")
