"""Upload bytes generated in the tests: good photos in every format, and bad ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def product_photo(size=(640, 480), colour=(200, 60, 40), bg=(245, 245, 245), seed=0) -> Image.Image:
    """A plain-background 'product': a shaded ellipse with a label stripe."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, rx, ry = w * 0.5, h * 0.55, w * 0.22, h * 0.3
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    alpha = np.clip((1.0 - d) * min(rx, ry) / 2.0, 0, 1)[..., None]
    shade = (0.75 + 0.25 * (1 - (xx - cx + rx) / (2 * rx)))[..., None]
    fg = np.array(colour, np.float32) * shade
    fg[np.abs(yy - cy) < ry * 0.15] = (240, 230, 200)
    img = alpha * fg + (1 - alpha) * np.array(bg, np.float32)
    img += rng.normal(0, 1.0, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` x `height` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg(img: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=90, exif=exif.tobytes())


def animated(fmt: str, size=(64, 64), frames=3) -> bytes:
    ims = [Image.new("RGB", size, (40 * i, 100, 200 - 40 * i)) for i in range(frames)]
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=100, loop=0)
