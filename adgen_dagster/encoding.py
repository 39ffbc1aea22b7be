"""Encoding helpers shared by the stage runner, the assets and the CLI: PNG/JSON bytes and UI previews.

PNG encoding is deterministic here (no timestamps, a fixed zlib level per output), so the
same image always gives the same bytes and digests can be compared across runs and tools.

The level depends on who reads the file:
- outputs only the pipeline reads again (`INTERMEDIATE`) are written fast (level 1);
- what people download (cut-out, mask, retouched photo, ads) is compressed well (level 4:
  about level 3's time, a smaller file; levels 6+ take two to thirty times longer for
  under 10 % less).
Every row is filtered with SUB (each byte minus the one to its left) instead of libpng's
per-row trial of all five filters: on the pipeline's own outputs the files are within 1 %
of the size and encoding takes about 27 % (level 4) to 51 % (level 1) less CPU
(bench/png_encoding.py prints both, side by side).

Stages return images; `encode_files` turns them into bytes, several at once, and a stage
given an image instead of PNG bytes uses it as is (`decode_png`): PNG is lossless, so the
pixels are the same either way. The encoder is OpenCV's (libpng and zlib): it runs without
holding the GIL, so encoding threads use every core, where Pillow's encoder holds the GIL
while it writes to memory; it is also about 10 % faster at the same level.

Within one process, an image `encode_files` just encoded is remembered by the sha256 of its
PNG bytes (`_Decoded`, a small memory budget, least recently used first out), so the next
stage of the same run, given those bytes back from the store, gets the pixels without
decoding the PNG again: the same pixels, since the bytes are exactly that image's encoding.
A Dagster run's steps run in one process (in-process executor), so in a batch each
intermediate is decoded from memory rather than from PNG (about 0.4 s CPU per product).
"""

from __future__ import annotations

import base64
import io
import hashlib
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Collection, Mapping, Union

import cv2
import numpy as np
from PIL import Image

FAST_LEVEL = 1
DOWNLOAD_LEVEL = 4
# Product files no one downloads: the normalised upload and the stages' working images.
INTERMEDIATE = frozenset({"product_image.png", "background.png", "composite.png", "composite_mask.png"})

FileValue = Union[bytes, Image.Image]


def png_level(name: str) -> int:
    """The zlib level for product file `name` (`ads/1080x1080.png`, `mask.png`, ...)."""
    return FAST_LEVEL if name in INTERMEDIATE else DOWNLOAD_LEVEL


def png_params(level: int, row_filter: int = cv2.IMWRITE_PNG_FILTER_SUB) -> list[int]:
    """OpenCV's PNG options: zlib `level` and one filter for every row (OpenCV 4.12+)."""
    return [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, row_filter]


_TO_BGR = {"RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGRA}


def encode_png(img: Image.Image, compress_level: int = DOWNLOAD_LEVEL) -> bytes:
    """PNG bytes of an 8-bit L, RGB or RGBA image (any other mode through Pillow)."""
    if img.mode in ("L", "RGB", "RGBA"):
        pixels = np.asarray(img)
        if img.mode in _TO_BGR:
            pixels = cv2.cvtColor(pixels, _TO_BGR[img.mode])
        ok, buf = cv2.imencode(".png", pixels, png_params(compress_level))
        if ok:
            return buf.tobytes()
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def encode_output(name: str, value: FileValue) -> bytes:
    """A product file's bytes: images as PNG at `png_level(name)`, bytes unchanged."""
    return encode_png(value, png_level(name)) if isinstance(value, Image.Image) else value


_POOL: ThreadPoolExecutor | None = None


def encoder_pool() -> ThreadPoolExecutor:
    """Threads for PNG encoding and file writes, one per core (created on first use, per process)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="adgen-encode")
    return _POOL


class _Decoded:
    """Images by the sha256 of their PNG bytes, within `budget` bytes of pixels (LRU out)."""

    MODES = frozenset({"L", "RGB", "RGBA"})  # what PNG gives back in the same mode

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, data: bytes, img: Image.Image) -> None:
        size = img.width * img.height * len(img.getbands())
        if img.mode not in self.MODES or size > self.budget // 4:
            return
        key, copy = hashlib.sha256(data).hexdigest(), img.copy()  # a copy: the caller may change its image
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return
            self._images[key] = copy
            self.used += size
            while self.used > self.budget:
                _, old = self._images.popitem(last=False)
                self.used -= old.width * old.height * len(old.getbands())

    def get(self, data: bytes) -> Image.Image | None:
        if not self._images:
            return None
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            img = self._images.get(key)
            if img is not None:
                self._images.move_to_end(key)
        return None if img is None else img.copy()

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self.used = 0


# A batch of 10 products keeps its pipeline-read images (about 18 MB each) between steps.
DECODED = _Decoded(256 * 2**20)


def encode_files(files: Mapping[str, FileValue], remember: Collection[str] = ()) -> dict[str, bytes]:
    """Every image in `files` encoded (in parallel when there are several), in the same order;
    those named in `remember` (what later stages read: the stage runner knows) are kept for `decode_png`."""
    images = [n for n, v in files.items() if isinstance(v, Image.Image)]
    if len(images) > 1:
        done = dict(zip(images, encoder_pool().map(lambda n: encode_output(n, files[n]), images)))
    else:
        done = {n: encode_output(n, files[n]) for n in images}
    for n in images:
        if n in remember:
            DECODED.remember(done[n], files[n])
    return {n: done.get(n, v) for n, v in files.items()}


def decode_png(data: FileValue) -> Image.Image:
    """An image from PNG bytes, or a copy of an image handed over in memory (never shared)."""
    if isinstance(data, Image.Image):
        return data.copy()
    known = DECODED.get(data)
    if known is not None:
        return known
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
