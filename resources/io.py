"""Encoding helpers shared by the assets: PNG/JSON bytes and UI previews.

PNG encoding is deterministic here (no timestamps, fixed compression), so the same
image always gives the same bytes and digests can be compared across runs and tools.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from PIL import Image


def encode_png(img: Image.Image, compress_level: int = 3) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def encode_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def preview_markdown(img: Image.Image, max_side: int = 192) -> str:
    """A small inline JPEG as a markdown image, which the Dagster UI renders."""
    thumb = img.copy()
    if thumb.mode == "RGBA":  # show transparency against a light checker-ish grey
        bg = Image.new("RGB", thumb.size, (236, 236, 236))
        bg.paste(thumb, mask=thumb.getchannel("A"))
        thumb = bg
    elif thumb.mode != "RGB":
        thumb = thumb.convert("RGB")
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    return f"![preview](data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()})"
