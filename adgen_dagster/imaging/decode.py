"""Safe decoding of untrusted uploads into a normalised working image.

An upload is whatever a shop owner dropped in a folder: phone photos with EXIF
rotation, CMYK exports, 16-bit PNGs, animated GIFs, truncated files, or hostile files
that declare gigantic dimensions or make the decoder work for minutes. This module
turns bytes into an 8-bit RGB or RGBA image of bounded size, or raises
`BadImageError` with one sentence that says what is wrong. It never writes anything;
the original upload stays untouched.

Bounds, in the order they apply (SECURITY.md states them with the tests that hold them):
bytes (`max_bytes`, also enforced by every reader before it reads), declared pixels
(`max_pixels`), JPEG scans and scans x pixels (`max_jpeg_scans`, `max_jpeg_scan_pixels`:
each progressive scan is a pass over the whole image), and memory: a picture larger than
`max_side` is shrunk band of rows by band of rows, each band converted to 8 bits per
channel (16-bit grey, palettes) just before it is resized, and rotation and colour
conversion happen after, on the small picture; so the full-size picture exists once, as
decoded (at most 4 bytes per pixel in Pillow), and decoding peaks at about that plus a
few bands (`MAX_BYTES_PER_PIXEL`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from adgen_dagster.imaging.jpeg_scans import count_scans

VERSION = "2"

# What `Image.open` may identify: the formats the README promises (Pillow's JPEG opener
# also returns multi-picture MPO files from phone cameras). Everything else Pillow could
# parse (EPS, which runs Ghostscript, and a long tail of legacy decoders) is refused as
# "not an image".
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# Peak memory of `decode_upload` above what the caller already holds (the upload's bytes):
# at most this many bytes per pixel of the upload plus 100 MB of working images and bands
# (tests/test_decode_bounds.py measures it in a fresh process). Pillow keeps RGB, RGBA, CMYK
# and 32-bit grey at 4 bytes per pixel; JPEGs over twice `max_side` decode at reduced scale.
MAX_BYTES_PER_PIXEL = 4

_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DEEP = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_BAND_ROWS = 64  # output rows made at a time when shrinking


class BadImageError(ValueError):
    """The upload cannot become a product image; str(err) is the user-facing reason."""


class DecodeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_side: int = Field(2048, ge=64, description="Long side of the working image; larger uploads are downscaled.")
    max_pixels: int = Field(
        100_000_000, ge=1_000_000, description="Declared pixel count above which an upload is refused as a decompression bomb."
    )
    min_side: int = Field(32, ge=1, description="Uploads with a shorter side than this are refused (too small for an ad).")
    max_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="Uploads larger than this many bytes are refused.")
    max_jpeg_scans: int = Field(
        100, ge=1, le=10_000, description="JPEGs with more scans than this are refused (progressive files have about 10; "
        "each scan is a decoding pass over the whole image)."
    )
    max_jpeg_scan_pixels: int = Field(
        2_000_000_000, ge=10_000_000, description="JPEGs whose scans x pixels exceed this are refused (decoding work: "
        "a 100 MP progressive JPEG may have up to 20 scans)."
    )


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[0].lower() + text[1:] if text else text


def _check_decode_work(im: Image.Image, data: bytes, name: str, p: DecodeParams) -> None:
    """Refuse JPEG scan bombs before libjpeg runs (JPEG-in-TIFF: libtiff stops at 100 scans itself)."""
    if im.format not in ("JPEG", "MPO"):
        return
    scans = count_scans(data, stop_after=p.max_jpeg_scans)
    if scans > p.max_jpeg_scans:
        raise BadImageError(f"{name}: a JPEG with more than {p.max_jpeg_scans} scans (possible decoder bomb; "
                            "re-save it as a normal JPEG)")
    w, h = im.size
    if scans * w * h > p.max_jpeg_scan_pixels:
        raise BadImageError(f"{name}: a {w}x{h} JPEG with {scans} scans is over the decoding limit of "
                            f"{p.max_jpeg_scan_pixels / 1e6:.0f} megapixel-scans (possible decoder bomb; re-save it as a normal JPEG)")


def _deep_top(im: Image.Image) -> float:
    """The value that maps to white for 16/32-bit grey: the format's range, not Pillow's clip at 255."""
    if im.mode.startswith("I;16"):
        return 65535.0
    return 65535.0 if im.getextrema()[1] > 255 else 255.0


def _working_mode(im: Image.Image, top: float) -> Image.Image:
    """A mode that can be resized well (8 bits per channel; palettes expanded)."""
    if im.mode in _DEEP:
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":  # palette indices cannot be interpolated
        return im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("PA", "La", "RGBa"):
        return im.convert("LA" if im.mode == "La" else "RGBA")
    return im


def _shrink(im: Image.Image, size: tuple[int, int], top: float) -> Image.Image:
    """`im` in its working mode and resized to `size`, band of rows by band of rows.

    Only a band of the source is ever converted (16-bit, palette) or premultiplied by
    Pillow's resize (RGBA), so the full-size picture exists once, as decoded. Each band
    is cropped with the filter's reach on both sides, so the bands join seamlessly.
    """
    src_w, src_h = im.size
    w, h = size
    scale = src_h / h
    reach = int(np.ceil(3 * max(scale, 1.0))) + 2  # LANCZOS has a radius of 3 output pixels
    out = None
    for r0 in range(0, h, _BAND_ROWS):
        r1 = min(h, r0 + _BAND_ROWS)
        y0, y1 = r0 * scale, r1 * scale
        c0, c1 = max(0, int(y0) - reach), min(src_h, int(np.ceil(y1)) + reach)
        band = _working_mode(im.crop((0, c0, src_w, c1)), top)
        part = band.resize((w, r1 - r0), Image.Resampling.LANCZOS, box=(0, y0 - c0, src_w, y1 - c0), reducing_gap=3.0)
        if out is None:
            out = Image.new(part.mode, size)
        out.paste(part, (0, r0))
    return out


def _final_mode(im: Image.Image) -> Image.Image:
    """RGB or RGBA (8-bit), keeping transparency where it exists."""
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode == "LA":
        return im.convert("RGBA")
    # CMYK: Adobe-style inverted CMYK JPEGs are already handled by Pillow's JPEG plugin.
    return im.convert("RGB")


def decode_upload(data: bytes, name: str, params: DecodeParams | None = None) -> Image.Image:
    """Decode upload bytes into an RGB/RGBA image with EXIF orientation applied.

    `name` is only used in error messages. Animated images give their first frame.
    A fully opaque alpha channel is dropped so the segmenter does not trust it.
    """
    p = params or DecodeParams()
    if not data:
        raise BadImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > p.max_bytes:
        raise BadImageError(f"{name}: the file is {len(data) / 1e6:.0f} MB, larger than the {p.max_bytes / 1e6:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = im.size
            if w * h > p.max_pixels:
                raise BadImageError(
                    f"{name}: declares {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the {p.max_pixels / 1e6:.0f} MP limit "
                    "(possible decompression bomb)"
                )
            if min(w, h) < p.min_side:
                raise BadImageError(f"{name}: the image is only {w}x{h} pixels; at least {p.min_side} px on each side is needed")
            _check_decode_work(im, data, name, p)
            # The first frame of an animation is the one open() left current (no n_frames:
            # counting frames would walk the whole file).
            # Shrink while decoding where the codec can (JPEG draft mode), then load fully.
            if im.format == "JPEG" and max(w, h) > 2 * p.max_side:
                im.draft(im.mode, (p.max_side, p.max_side))
            im.load()
            turn = _ORIENTATION.get(im.getexif().get(0x0112, 1))
            top = _deep_top(im) if im.mode in _DEEP else 255.0
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{name}: refused as a possible decompression bomb ({_describe(exc)})") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{name}: not an image (the content is not a format this tool can read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = _describe(exc)
        if "truncated" in msg or "broken" in msg or isinstance(exc, EOFError):
            raise BadImageError(f"{name}: the image data is truncated or damaged ({msg})") from None
        raise BadImageError(f"{name}: the image cannot be decoded ({msg})") from None

    if max(im.size) > p.max_side:  # first shrink (band by band), then everything else on the small picture
        scale = p.max_side / max(im.size)
        im = _shrink(im, (max(1, round(im.width * scale)), max(1, round(im.height * scale))), top)
    else:
        im = _working_mode(im, top)
    if turn is not None:
        im = im.transpose(turn)
    im = _final_mode(im)
    if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255:
        im = im.convert("RGB")
    im.info.clear()
    return im
