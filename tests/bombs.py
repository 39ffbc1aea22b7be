"""Files that make a decoder work or allocate: JPEG scan bombs and big-but-legal pictures.

Built byte by byte so they are cheap to make: a scan bomb is a small progressive JPEG
followed by thousands of scans that each code one AC band of the luma as a single
end-of-band run (a few bytes each, a full pass over the image's blocks for libjpeg); the
big pictures are PNG/TIFF files streamed row by row through zlib (a repeating gradient,
so a 9400x9400 16-bit PNG takes a second to write and a few MB on disk).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) for each segment of a JPEG up to EOI; a scan ends where its data ends."""
    out, i = [], 2
    while i < len(data):
        m = data[i + 1]
        if m == 0xD9:
            out.append((m, i, i + 2))
            break
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if m == 0xDA:
            end = _MARKER.search(data, end).start()
        out.append((m, i, end))
        i = end
    return out


def progressive(size=(256, 192), colour=(120, 130, 140)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", progressive=True, quality=85)
    return buf.getvalue()


def eob_scan_bomb(size=(1024, 1024), scans=2000) -> bytes:
    """A valid progressive JPEG plus `scans` extra end-of-band scans of the luma's last AC band."""
    data = progressive(size)
    segs = _segments(data)
    eoi = segs[-1][1]
    sof = next(s for m, s, _ in segs if m == 0xC2)
    luma = data[sof + 10]
    # AC table 3: the symbols EOB0..EOB14, 4-bit codes (code r = EOBr).
    dht = b"\xff\xc4" + struct.pack(">H", 2 + 1 + 16 + 15) + bytes([0x13]) + bytes([0, 0, 0, 15] + [0] * 12) \
        + bytes(r << 4 for r in range(15))
    blocks = ((size[0] + 7) // 8) * ((size[1] + 7) // 8)
    bits, left = "", blocks
    while left > 0:
        run = min(left, 32767)
        r = run.bit_length() - 1
        bits += format(r, "04b") + (format(run - (1 << r), f"0{r}b") if r else "")
        left -= run
    bits += "1" * (-len(bits) % 8)
    payload = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    scan = b"\xff\xda" + struct.pack(">H", 8) + bytes([1, luma, 0x03, 63, 63, 0x00]) + payload
    return data[:eoi] + dht + scan * scans + data[eoi:]


def repeated_scans(size=(256, 192), extra=150) -> bytes:
    """A progressive JPEG whose smallest real scan is repeated `extra` times."""
    data = progressive(size)
    segs = _segments(data)
    s, e = min(((s, e) for m, s, e in segs if m == 0xDA), key=lambda t: t[1] - t[0])
    eoi = segs[-1][1]
    return data[:eoi] + data[s:e] * extra + data[eoi:]


def jpeg_in_tiff(jpeg: bytes, size: tuple[int, int]) -> bytes:
    """A TIFF whose single strip is `jpeg` (compression 7): the decoding goes through libtiff."""
    w, h = size
    bps_off = 8 + len(jpeg)
    ifd_off = bps_off + 6 + (bps_off + 6) % 2
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, bps_off), (259, 3, 1, 7), (262, 3, 1, 6), (273, 4, 1, 8),
            (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(jpeg)), (284, 3, 1, 1)]
    out = b"II*\x00" + struct.pack("<I", ifd_off) + jpeg + struct.pack("<HHH", 8, 8, 8)
    out += b"\x00" * (ifd_off - len(out)) + struct.pack("<H", len(tags))
    for code, typ, count, value in tags:
        out += struct.pack("<HHIHH", code, typ, count, value, 0) if typ == 3 and count == 1 else \
            struct.pack("<HHII", code, typ, count, value)
    return out + struct.pack("<I", 0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# PNG colour types and bytes per pixel of the kinds of big pictures the memory test decodes.
_PNG = {"I;16": (0, 16, 2), "L": (0, 8, 1), "RGB": (2, 8, 3), "RGBA": (6, 8, 4), "P": (3, 8, 1)}


def big_png(path: Path, mode: str, w: int, h: int) -> Path:
    """A `w` x `h` PNG of `mode`, streamed: bands of 64 equal rows of a horizontal gradient (filter "Up")."""
    ctype, depth, bpp = _PNG[mode]
    x = np.arange(w)
    rows = []
    for k in range(4):  # four different rows, so the picture is not uniform
        v = (x * 7 + k * 31) % 256
        if mode == "I;16":
            row = ((x * 7 + k * 977) % 65536).astype(">u2").tobytes()
        elif mode == "RGBA":
            row = np.stack([v, 255 - v, v // 2, 255 - v // 3], -1).astype(np.uint8).tobytes()
        elif mode == "RGB":
            row = np.stack([v, 255 - v, v // 2], -1).astype(np.uint8).tobytes()
        else:
            row = v.astype(np.uint8).tobytes()
        rows.append(b"\x00" + row)
    z = zlib.compressobj(1)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)))
        if mode == "P":
            fh.write(_chunk(b"PLTE", bytes(np.repeat(np.arange(256, dtype=np.uint8), 3))))
            fh.write(_chunk(b"tRNS", b"\x00"))  # index 0 transparent: the picture keeps an alpha channel
        same = b"\x02" + bytes(len(rows[0]) - 1)  # filter "Up" with zero differences: the row above again
        for y in range(h):
            part = z.compress(rows[(y // 64) % 4] if y % 64 == 0 else same)
            if part:
                fh.write(_chunk(b"IDAT", part))
        fh.write(_chunk(b"IDAT", z.flush()) + _chunk(b"IEND", b""))
    return path


def big_tiff_int32(path: Path, w: int, h: int) -> Path:
    """An uncompressed 32-bit signed grey TIFF (Pillow mode "I"), streamed: header, pixels, then the IFD."""
    strip = w * h * 4
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 32), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 8),
            (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, strip), (339, 3, 1, 2)]
    row = ((np.arange(w) * 37) % 100_000).astype("<i4").tobytes()
    with open(path, "wb") as fh:
        fh.write(b"II*\x00" + struct.pack("<I", 8 + strip))
        for _ in range(h):
            fh.write(row)
        fh.write(struct.pack("<H", len(tags)))
        for code, typ, count, value in tags:
            fh.write(struct.pack("<HHIHH", code, typ, count, value, 0) if typ == 3 else struct.pack("<HHII", code, typ, count, value))
        fh.write(struct.pack("<I", 0))
    return path
