"""Safe decoding of untrusted uploads into a normalised working image.

An upload is whatever a shop owner dropped in a folder: phone photos with EXIF
rotation, CMYK exports, 16-bit PNGs, animated GIFs, truncated files, or hostile files
that declare gigantic dimensions. This module turns bytes into an 8-bit RGB or RGBA
image of bounded size, or raises `BadImageError` with one sentence that says what is
wrong. It never writes anything; the original upload stays untouched.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

VERSION = "1"

# What `Image.open` may identify: the formats the README promises (Pillow's JPEG opener
# also returns multi-picture MPO files from phone cameras). Everything else Pillow could
# parse (EPS, which runs Ghostscript, and a long tail of legacy decoders) is refused as
# "not an image".
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


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


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[0].lower() + text[1:] if text else text


def _to_8bit(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to RGB or RGBA (8-bit), keeping transparency where it exists."""
    mode = im.mode
    if mode in ("RGB", "RGBA"):
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own convert("L") clips 16-bit data at 255; scale by the real range.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        return im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        return im.convert("RGBA")
    if mode == "CMYK":
        # Adobe-style CMYK JPEGs are stored inverted; Pillow already handles the marker.
        return im.convert("RGB")
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
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
            # Shrink while decoding where the codec can (JPEG draft mode), then load fully.
            if im.format == "JPEG" and max(w, h) > 2 * p.max_side:
                im.draft(im.mode, (p.max_side, p.max_side))
            im.load()
            im = ImageOps.exif_transpose(im)
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

    im = _to_8bit(im)
    if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255:
        im = im.convert("RGB")
    if max(im.size) > p.max_side:
        scale = p.max_side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    im.info.clear()
    return im
