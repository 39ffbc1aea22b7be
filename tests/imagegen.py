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
    """Frames of colour (40 * i, 100, 200 - 40 * i) with a yellow square 'product' in the lower right
    (so a frame can be cut out; the centre pixel still shows the frame colour)."""
    ims = [Image.new("RGB", size, (40 * i, 100, 200 - 40 * i)) for i in range(frames)]
    w, h = size
    for im in ims:
        im.paste((230, 200, 40), (w * 9 // 16, h * 9 // 16, w * 7 // 8, h * 7 // 8))
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=100, loop=0)


# --- the hardening corpus (issue 7): odd but valid photos, and hostile bytes ------------------


def huge_photo(size=(8000, 6000)) -> bytes:
    """A real-size camera JPEG (48 MP) without computing 48 MP of noise: a small photo upscaled."""
    return encode(product_photo((400, 300)).resize(size, Image.Resampling.BILINEAR), "JPEG", quality=85)


def cmyk_jpeg(size=(160, 120)) -> bytes:
    return encode(product_photo(size).convert("CMYK"), "JPEG", quality=92)


def deep_png(size=(160, 120)) -> bytes:
    """A 16-bit grayscale PNG using the full 0..65535 range."""
    grey = np.asarray(product_photo(size).convert("L"), np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def palette_png_with_transparency(size=(160, 120)) -> bytes:
    """A palette PNG: transparent background (index 0), an opaque two-colour product."""
    from PIL import ImageDraw

    w, h = size
    im = Image.new("P", size, 0)
    im.putpalette([255, 255, 255, 30, 90, 200, 240, 230, 200] + [0] * (256 * 3 - 9))
    d = ImageDraw.Draw(im)
    d.ellipse((w * 0.28, h * 0.2, w * 0.72, h * 0.9), fill=1)
    d.rectangle((w * 0.3, h * 0.5, w * 0.7, h * 0.6), fill=2)
    return encode(im, "PNG", transparency=0)


def grayscale_png(size=(160, 120)) -> bytes:
    return encode(product_photo(size).convert("L"), "PNG")


def full_frame_product(size=(160, 160)) -> bytes:
    """A tight crop: the product touches all four edges, only the corners show background."""
    w, h = 320, 240
    crop = product_photo((w, h)).crop((int(w * 0.28), int(h * 0.25), int(w * 0.72), int(h * 0.85)))
    return encode(crop.resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)


def blank(size=(160, 120), colour=(255, 255, 255)) -> bytes:
    return encode(Image.new("RGB", size, colour), "PNG")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def heic_like() -> bytes:
    """The start of an HEIC file (ISO BMFF `ftyp` box, brand `heic`): a format this project does not read."""
    ftyp = b"ftyp" + b"heic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return (len(ftyp) + 4).to_bytes(4, "big") + ftyp + b"\x00\x00\x00\x08free" + bytes(256)


def eps_document() -> bytes:
    """A PostScript image: Pillow would hand it to Ghostscript, so decode refuses it."""
    return encode(product_photo((64, 64)), "EPS")
