"""Counting the scans of a JPEG before libjpeg decodes it (the decode-work bound).

A progressive JPEG is decoded scan by scan, and every scan is a pass over all the
image's blocks, however few bytes it takes: a 100 KB file made of thousands of
end-of-band scans keeps libjpeg busy for minutes. Pillow offers no scan limit, so
`count_scans` walks the marker segments first (header segments by their length,
entropy-coded data up to the next marker, in C via `re`) and `decode` refuses a file
whose scans, or scans times pixels, are over the limits. Only the primary image is
counted (up to its EOI): that is the one Pillow decodes; embedded thumbnails sit
inside APP segments and are skipped by length.
"""

from __future__ import annotations

import re

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# A marker inside entropy-coded data: 0xFF followed by anything but a stuffed 0x00,
# a restart marker (RST0-7) or a fill byte.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field


def count_scans(data: bytes, stop_after: int | None = None) -> int:
    """Start-of-scan markers of the first image in `data` (0 when it is not a JPEG).

    Stops early once `stop_after` is exceeded (the caller only needs to know it is
    over). A damaged stream ends the count where it stops making sense; the decoder
    then reports the damage.
    """
    if data[:2] != b"\xff\xd8":
        return 0
    scans, i, n = 0, 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == EOI:
            break
        if marker in _STANDALONE:
            i += 2
            continue
        if i + 4 > n:
            break
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker != SOS:
            i = end
            continue
        scans += 1
        if stop_after is not None and scans > stop_after:
            break
        found = _NEXT_MARKER.search(data, end)
        if found is None:
            break
        i = found.start()
    return scans
