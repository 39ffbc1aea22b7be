"""PNG settings per output: lossless in every mode we write, deterministic, fast where no one downloads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adgen_dagster.encoding import (DOWNLOAD_LEVEL, FAST_LEVEL, INTERMEDIATE, decode_png, encode_files, encode_output,
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


def png_row_filters(data: bytes) -> set[int]:
    """The filter type byte of every row of a non-interlaced 8-bit PNG (read from its IDAT chunks)."""
    import struct
    import zlib

    pos, idat, width, channels = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, depth, colour = struct.unpack(">I", body[:4])[0], body[8], body[9]
            assert depth == 8 and body[12] == 0, "8-bit, not interlaced"
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    assert len(raw) % stride == 0
    return {raw[i] for i in range(0, len(raw), stride)}


@pytest.mark.parametrize("name", ["composite.png", "ads/1080x1080.png"])
def test_every_row_uses_the_sub_filter(name):
    """The cheaper single filter (bench/png_encoding.py), for fast and well-compressed outputs alike; libpng's
    own choice, tried for comparison, picks several filter types on the same image."""
    import cv2

    from adgen_dagster.encoding import png_params

    img = noisy("RGB", size=(120, 90), seed=4)
    smooth = Image.fromarray(np.tile(np.arange(120, dtype=np.uint8), (90, 1)))
    assert png_row_filters(encode_output(name, img)) == {1} == png_row_filters(encode_output(name, smooth))
    pixels = np.concatenate([np.asarray(smooth), np.asarray(img.convert("L"))], axis=0)
    ok, adaptive = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, png_level(name),
                                                 cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_ALL_FILTERS])
    assert ok and len(png_row_filters(adaptive.tobytes())) > 1
    ok, sub = cv2.imencode(".png", pixels, png_params(png_level(name)))
    assert ok and png_row_filters(sub.tobytes()) == {1}


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


def test_images_encoded_for_later_stages_come_back_from_memory_with_the_same_pixels(monkeypatch):
    from adgen_dagster import encoding as rio
    from adgen_dagster.stage_runner import READ_BY_A_STAGE

    memo = rio._Decoded(10 * 67 * 41 * 4)
    monkeypatch.setattr(rio, "DECODED", memo)
    files = {"composite.png": noisy("RGB", seed=4), "composite_mask.png": noisy("L", seed=5),
             "nobg_image.png": noisy("RGBA", seed=6), "ads/1080x1080.png": noisy("RGB", seed=7)}
    want = {n: np.asarray(img).copy() for n, img in files.items()}
    out = encode_files(files, remember=READ_BY_A_STAGE)  # as the stage runner calls it
    files["composite.png"].paste((0, 0, 0), (0, 0, 30, 30))  # the stage changing its image afterwards changes nothing
    decoded = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: decoded.append(a) or pytest.fail("decoded a PNG"))
    for name in ("composite.png", "composite_mask.png", "nobg_image.png"):
        back = decode_png(out[name])
        assert back.mode == files[name].mode and np.array_equal(np.asarray(back), want[name]), name
        back.paste(0, (0, 0, 5, 5))  # each caller gets its own copy
        assert np.array_equal(np.asarray(decode_png(out[name])), want[name])
    monkeypatch.undo()
    # downloads no stage reads are not kept; bytes never encoded here are decoded as usual
    assert memo.get(out["ads/1080x1080.png"]) is None
    other = encode_png(noisy("RGB", seed=8))
    assert memo.get(other) is None and np.array_equal(np.asarray(decode_png(other)), np.asarray(noisy("RGB", seed=8)))


def test_the_memory_of_encoded_images_stays_within_its_budget():
    from adgen_dagster.encoding import _Decoded

    memo = _Decoded(4 * 67 * 41 * 3)
    kept = []
    for seed in range(8):
        img = noisy("RGB", seed=seed)
        data = encode_png(img)
        memo.remember(data, img)
        kept.append(data)
        assert memo.used <= memo.budget
    assert memo.get(kept[0]) is None and memo.get(kept[-1]) is not None  # least recently used out first
