"""Headless Chromium driven over the DevTools protocol on a pipe, for render checks.

`--remote-debugging-pipe` makes Chromium read protocol commands from fd 3 and write
replies and events to fd 4, each a JSON message ended by a NUL byte: no port (nothing to
collide with other test runs), no websocket client, nothing added to the page. The page
under test is loaded unmodified, with its Content-Security-Policy; measurements run in an
isolated world, which a page's CSP does not govern, so a page that forbids scripts can still
be measured.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# Headless, offline and quiet: no sandbox (containers), no GPU, no QUIC, no first-run or
# background traffic; every run gets a fresh --user-data-dir.
BASE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
FLAGS = (*BASE_FLAGS, "--hide-scrollbars", "--force-device-scale-factor=1", "--mute-audio", "--remote-debugging-pipe")


class ChromiumError(RuntimeError):
    pass


class Chromium:
    """One headless browser with a fresh profile; `with Chromium() as c: c.open(...)`."""

    def __init__(self, timeout: float = 60.0):
        if CHROMIUM is None:
            raise ChromiumError("headless Chromium is not installed")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="adgen-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the child needs them as fds 3 and 4: move them out of the way first, then dup2 in place
        hi_r, hi_w = os.dup(to_child_r), os.dup(from_child_w)

        def fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=fds, start_new_session=True,
        )
        for fd in (to_child_r, from_child_w, hi_r, hi_w):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self._events: list[dict] = []
        self.session = ""
        self._closed = False

    # ------------------------------------------------------------------ protocol

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise ChromiumError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        sid = self.session if session is None else session
        if sid:
            msg["sessionId"] = sid
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data):]
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method:
                    return self._events.pop(i).get("params", {})
            self._events.append(self._read_message(deadline))

    # ------------------------------------------------------------------ pages

    def open(self, url: str, width: int, height: int) -> None:
        """Load `url` in a new tab whose viewport is width x height CSS px at scale 1."""
        if self.session:  # one page at a time
            self.send("Target.closeTarget", {"targetId": self._target}, session="")
            self.session = ""
        target = self._target = self.send("Target.createTarget", {"url": "about:blank"}, session="")["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session="")["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.enable")
        self._events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        self._world = self.send("Page.createIsolatedWorld", {
            "frameId": self.send("Page.getFrameTree")["frameTree"]["frame"]["id"], "worldName": "measure",
        })["executionContextId"]
        self.evaluate("document.fonts.ready.then(() => true)")

    def evaluate(self, expression: str):
        """Value of a JS expression (awaited if a promise) in an isolated world of the page."""
        res = self.send("Runtime.evaluate", {
            "expression": expression, "contextId": self._world, "awaitPromise": True, "returnByValue": True,
        })
        if "exceptionDetails" in res:
            raise ChromiumError(f"evaluate: {res['exceptionDetails'].get('text')} {res['exceptionDetails'].get('exception', {}).get('description', '')}")
        return res["result"].get("value")

    def screenshot(self, width: int, height: int) -> bytes:
        """PNG bytes of the viewport's top-left width x height CSS px."""
        # two animation frames: styles, fonts and layout have settled and been painted
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
        res = self.send("Page.captureScreenshot", {
            "format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        })
        return base64.b64decode(res["data"])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.send("Browser.close", session="")
        except (ChromiumError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render(page: Path, width: int, height: int, measure_js: str | None = None) -> tuple[bytes, object]:
    """Screenshot (PNG bytes) of a page at width x height, and the value of `measure_js`."""
    with Chromium() as c:
        c.open(page.resolve().as_uri(), width, height)
        value = c.evaluate(measure_js) if measure_js else None
        return c.screenshot(width, height), value
