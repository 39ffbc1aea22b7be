"""Fonts for web pages: the shipped TrueType files wrapped, unchanged, as WOFF 1.0.

WOFF 1.0 is the sfnt's tables, each zlib-compressed on its own, behind a small directory;
decompressing gives back every table byte for byte. That matters for NanumSquare: "Nanum"
is a Reserved Font Name under its OFL licence, so a Modified Version (a subset, a WOFF2
with transformed glyf/loca tables, changed metadata) could not keep the name. The OFL FAQ's
entry on WOFF versions of OFL fonts allows a WOFF of an unmodified font without renaming
when the font data is unchanged except for compression and no WOFF metadata block is
added, which is what `woff()` writes (and tests/test_ad_html.py checks by unpacking it). NanumSquare Bold: 733,500 bytes as TTF, 280,484 as WOFF.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from pathlib import Path


def _align4(n: int) -> int:
    return (n + 3) & ~3


def sfnt_tables(data: bytes) -> tuple[bytes, dict[bytes, tuple[bytes, int]]]:
    """(sfnt version, {tag: (table bytes, checksum)}) of a TrueType/OpenType font file."""
    version, n = struct.unpack(">4sH", data[:6])
    if version not in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
        raise ValueError("not a single TrueType/OpenType font (collections cannot be WOFF 1.0)")
    tables = {}
    for i in range(n):
        tag, checksum, off, length = struct.unpack(">4sIII", data[12 + 16 * i : 28 + 16 * i])
        if off + length > len(data):
            raise ValueError(f"table {tag!r} runs past the end of the file")
        tables[tag] = (data[off : off + length], checksum)
    return version, tables


@lru_cache(maxsize=8)
def woff(path: str) -> bytes:
    """The font at `path` as WOFF 1.0 (lossless; no metadata or private block)."""
    version, tables = sfnt_tables(Path(path).read_bytes())
    tags = sorted(tables)
    directory, blobs = [], []
    offset = 44 + 20 * len(tags)
    total_sfnt = 12 + 16 * len(tags)
    for tag in tags:
        raw, checksum = tables[tag]
        packed = zlib.compress(raw, 9)
        if len(packed) >= len(raw):  # stored as is when compressing does not help
            packed = raw
        directory.append(struct.pack(">4sIIII", tag, offset, len(packed), len(raw), checksum))
        blobs.append(packed + b"\0" * (_align4(len(packed)) - len(packed)))
        offset += _align4(len(packed))
        total_sfnt += _align4(len(raw))
    header = struct.pack(">4s4sIHHIHHIIIII", b"wOFF", version, offset, len(tags), 0, total_sfnt,
                         1, 0, 0, 0, 0, 0, 0)
    return header + b"".join(directory) + b"".join(blobs)


def font_names(path: str) -> list[str]:
    """Full name and PostScript name of a font file (the first font of a collection), for CSS
    `local()`: what an installed copy of the font answers to. Empty when unreadable."""
    try:
        data = Path(path).read_bytes()
        base = struct.unpack(">I", data[12:16])[0] if data[:4] == b"ttcf" else 0
        n = struct.unpack(">H", data[base + 4 : base + 6])[0]
        dirs = [struct.unpack(">4sIII", data[base + 12 + 16 * i : base + 28 + 16 * i]) for i in range(n)]
        off = next(o for tag, _, o, _ in dirs if tag == b"name")
        count, strings = struct.unpack(">HH", data[off + 2 : off + 6])
        found: dict[int, str] = {}
        for i in range(count):
            plat, enc, lang, nid, length, so = struct.unpack(">HHHHHH", data[off + 6 + 12 * i : off + 18 + 12 * i])
            raw = data[off + strings + so : off + strings + so + length]
            if nid in (4, 6) and nid not in found:
                if plat == 3 and enc in (0, 1, 10):
                    found[nid] = raw.decode("utf-16-be", "replace")
                elif plat == 1 and enc == 0:
                    found[nid] = raw.decode("mac_roman", "replace")
        return [found[k] for k in (4, 6) if k in found]
    except (OSError, StopIteration, struct.error, ValueError):
        return []


def unwoff(data: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """(sfnt version, {tag: table bytes}) of a WOFF 1.0 file: the inverse of `woff`."""
    sig, version, _, n = struct.unpack(">4s4sIH", data[:14])
    if sig != b"wOFF":
        raise ValueError("not a WOFF file")
    tables = {}
    for i in range(n):
        tag, off, comp, orig, _ = struct.unpack(">4sIIII", data[44 + 20 * i : 64 + 20 * i])
        blob = data[off : off + comp]
        tables[tag] = zlib.decompress(blob) if comp < orig else blob
    return version, tables
