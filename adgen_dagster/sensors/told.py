"""What a sensor has already told the operator, so each skipped object is reported once.

Sensors list their prefix again and again (that is how re-uploads are seen); without
a memory, a file the pipeline will never read (a FIFO, a link, a name with a control
character) would be logged on every tick. `Told` keeps a bounded set of short digests of
(key, reason) in the sensor's cursor: a note is logged the first time, and again only
if the reason changes or after a few thousand newer notes have pushed it out.
"""

from __future__ import annotations

import hashlib
from typing import Any

MAX_NOTES = 2000  # about 26 KB of cursor


class Told:
    def __init__(self, digests: Any = None):
        self._seen: dict[str, None] = dict.fromkeys(d for d in (digests or []) if isinstance(d, str))

    @staticmethod
    def _digest(key: str, reason: str) -> str:
        raw = f"{key}\0{reason}".encode("utf-8", "surrogateescape")
        return hashlib.sha256(raw).hexdigest()[:12]

    def first(self, key: str, reason: str) -> bool:
        """True the first time this (key, reason) is seen: log it then."""
        d = self._digest(key, reason)
        if d in self._seen:
            return False
        self._seen[d] = None
        while len(self._seen) > MAX_NOTES:
            del self._seen[next(iter(self._seen))]
        return True

    def dump(self) -> list[str]:
        return list(self._seen)
