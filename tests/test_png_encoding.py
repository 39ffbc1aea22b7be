"""PNG settings per output: lossless in every mode we write, deterministic, fast where no one downloads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from resources.io import (DOWNLOAD_LEVEL, FAST_LEVEL, INTERMEDIATE, decode_png, encode_files, encode_output,
                          encode_png, png_level)


def noisy(mode: str, size=(67, 41), seed=0) -> Image.Image:
    bands = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(a[..., 0] if bands == 1 else a, mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA"])
def test_png_round_trip_is_exact_and_deterministic(mode):
    img = noisy(mode)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == encode_png(img)
    back = decode_png(data)
    assert back.mode == mode and back.size == img.size and np.array_equal(np.asarray(back), np.asarray(img))
    with Image.open(io.BytesIO(data)) as pil:  # any PNG reader gets the same pixels
        assert np.array_equal(np.asarray(pil), np.asarray(img))


def test_levels_per_output():
    assert {n for n in INTERMEDIATE} == {"product_image.png", "background.png", "composite.png", "composite_mask.png"}
    assert all(png_level(n) == FAST_LEVEL for n in INTERMEDIATE)
    for n in ("nobg_image.png", "mask.png", "retouched.png", "ads/1080x1080.png"):
        assert png_level(n) == DOWNLOAD_LEVEL > FAST_LEVEL
    smooth = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1)).repeat(3).reshape(256, 256, 3))
    assert len(encode_output("retouched.png", smooth)) <= len(encode_output("composite.png", smooth))


def test_encode_files_keeps_order_bytes_and_pixels():
    files = {"composite.png": noisy("RGB", seed=1), "details.json": b"{}", "mask.png": noisy("L", seed=2),
             "ads/1080x1080.png": noisy("RGB", seed=3)}
    out = encode_files(files)
    assert list(out) == list(files) and out["details.json"] == b"{}"
    for name, img in files.items():
        if isinstance(img, Image.Image):
            assert out[name] == encode_output(name, img)
            assert np.array_equal(np.asarray(decode_png(out[name])), np.asarray(img))


def test_an_image_handed_over_in_memory_is_a_copy():
    img = noisy("RGB")
    got = decode_png(img)
    got.paste((0, 0, 0), (0, 0, 10, 10))
    assert not np.array_equal(np.asarray(got), np.asarray(img))
