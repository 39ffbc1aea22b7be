"""Small helpers shared by the benchmarks: peak-RSS sampling and table printing."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the high-water mark
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Samples resident memory every millisecond while the block runs; `.peak_mb` is above the start."""

    def __init__(self, interval: float = 0.001):
        self.interval = interval
        self.peak_mb = 0.0

    def __enter__(self):
        self._start = rss_bytes()
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, rss_bytes())
        self.peak_mb = (self._peak - self._start) / 2**20
        return False


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else f"{c:,.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    print(line)
    for r in cells[1:]:
        print("  ".join((c.rjust(w) if i else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))))


def ten_uploads() -> list[tuple[str, bytes]]:
    """Ten distinct products: the six sample photos and mirrored copies of four of them."""
    import io

    from PIL import Image, ImageOps

    from adgen_dagster.demo import SAMPLES, sample_catalog

    out = [(row["upload"], (SAMPLES / row["photo"]).read_bytes()) for row in sample_catalog()]
    for row in sample_catalog()[:4]:
        im = ImageOps.mirror(Image.open(SAMPLES / row["photo"]).convert("RGB"))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        out.append(("mirrored-" + row["upload"], buf.getvalue()))
    return out
