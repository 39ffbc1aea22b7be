"""Retouch: edge band only, chromatic adaptation, sharpening, tone, identity when off."""

import typing

import cv2
import numpy as np
import pytest
from PIL import Image

from adgen_dagster.imaging.colour import srgb8_to_linear
from adgen_dagster.imaging.retouch import RetouchParams, adaptation_matrix, retouch, tone_curve

OFF = dict(
    edge_band=0, harmonize=0.0, luminance_match=0.0, sharpen_amount=0.0, brightness=1.0, contrast=1.0, saturation=1.0
)


def scene(bg_colour=(225, 225, 225), product=None, size=200, box=(50, 40, 150, 170), soft=2.0):
    """(image, mask, background): a product (grey or given array) pasted with a soft mask."""
    bg = np.empty((size, size, 3), np.uint8)
    bg[:] = bg_colour
    x0, y0, x1, y1 = box
    hard = np.zeros((size, size), np.float32)
    hard[y0:y1, x0:x1] = 1.0
    a = cv2.GaussianBlur(hard, (0, 0), soft) if soft else hard
    if product is None:
        product = np.full((size, size, 3), 128, np.uint8)
    img = srgb8_to_linear(product) * a[..., None] + srgb8_to_linear(bg) * (1 - a[..., None])
    img = np.round(255 * np.where(img <= 0.0031308, img * 12.92, 1.055 * img ** (1 / 2.4) - 0.055)).astype(np.uint8)
    mask = np.round(a * 255).astype(np.uint8)
    return Image.fromarray(img), Image.fromarray(mask, "L"), Image.fromarray(bg)


def arr(im):
    return np.asarray(im, dtype=np.int16)


def test_params_are_primitive_and_strict():
    for name, f in RetouchParams.model_fields.items():
        ann = f.annotation
        assert ann in (int, float, bool, str) or typing.get_origin(ann) is typing.Literal, name
        assert f.description, name
    with pytest.raises(Exception):
        RetouchParams(sharpness=1)


def test_all_steps_off_is_identity():
    rng = np.random.default_rng(1)
    tex = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    img, mask, bg = scene((240, 200, 160), product=tex)
    out = retouch(img, mask, bg, RetouchParams(**OFF))
    assert out.tobytes() == img.tobytes()
    # Each strength at 0 disables its step (edge blur 0 with a band is also off).
    out = retouch(img, mask, bg, RetouchParams(**{**OFF, "edge_band": 3, "edge_blur": 0.0}))
    assert out.tobytes() == img.tobytes()


def test_mask_size_mismatch_is_an_error_background_is_resized():
    img, mask, bg = scene((255, 214, 170))
    with pytest.raises(ValueError, match="one size"):
        retouch(img, mask.resize((100, 100)), bg)
    p = RetouchParams(**{**OFF, "harmonize": 1.0, "max_cast": 0.2})
    same = retouch(img, mask, bg, p)
    assert retouch(img, mask, bg.resize((400, 400)), p).tobytes() == same.tobytes()


def test_edge_blend_touches_only_the_band():
    rng = np.random.default_rng(2)
    tex = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    img, mask, bg = scene((230, 220, 200), product=tex, soft=0)
    r = 3
    out = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "edge_band": r, "edge_blur": 1.2})))
    inside = (np.asarray(mask) >= 128).astype(np.uint8)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 3, 2 * r + 3))
    band = (cv2.dilate(inside, disk) - cv2.erode(inside, disk)) > 0
    changed = (out != arr(img)).any(axis=2)
    assert changed.sum() > 100
    assert not (changed & ~band).any()
    # The edge got softer: the step across it is smaller than before.
    row = 100
    assert np.abs(np.diff(out[row, 44:56].mean(axis=1))).max() < np.abs(np.diff(arr(img)[row, 44:56].mean(axis=1))).max()


def test_adaptation_moves_grey_toward_a_warm_light():
    p = RetouchParams(**{**OFF, "harmonize": 1.0, "max_cast": 0.2})
    img, mask, bg = scene((255, 214, 170))
    out = arr(retouch(img, mask, bg, p))
    r, g, b = out[100, 100]
    assert r - b >= 10 and r > 128 > b
    # Luminance of the product is about preserved (chromatic adaptation only).
    lin = srgb8_to_linear(out[100, 100].astype(np.uint8))
    assert abs(float(lin @ np.array([0.2126, 0.7152, 0.0722])) - float(srgb8_to_linear(np.uint8(128)))) < 0.02
    # The background is not touched.
    assert (out[5:30, 5:30] == arr(img)[5:30, 5:30]).all()


def test_adaptation_is_identity_under_a_neutral_light():
    img, mask, bg = scene((200, 200, 200))
    out = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "harmonize": 1.0, "max_cast": 0.2})))
    assert np.abs(out - arr(img)).max() <= 1
    assert np.allclose(adaptation_matrix(np.array([0.5, 0.5, 0.5])), np.eye(3), atol=1e-4)


def test_max_cast_limits_a_saturated_backdrop():
    img, mask, bg = scene((140, 30, 35))
    small = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "harmonize": 1.0, "max_cast": 0.02})))
    large = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "harmonize": 1.0, "max_cast": 0.2})))
    shift = lambda o: int(o[100, 100, 0]) - int(o[100, 100, 2])  # noqa: E731
    assert 0 < shift(small) < shift(large) / 2


def test_sharpening_adds_detail_on_the_product_only():
    rng = np.random.default_rng(3)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8), (0, 0), 1.5)
    img, mask, bg = scene((230, 230, 230), product=tex)
    out = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "sharpen_amount": 1.0, "sharpen_threshold": 0.0})))

    def hf(a):
        g = a[60:150, 70:130].mean(axis=2).astype(np.float32)
        return float(cv2.Laplacian(g, cv2.CV_32F).var())

    assert hf(out) > 1.3 * hf(arr(img))
    assert (out[:30] == arr(img)[:30]).all()
    # A high threshold leaves faint texture alone.
    faint = arr(retouch(img, mask, bg, RetouchParams(**{**OFF, "sharpen_amount": 1.0, "sharpen_threshold": 60.0})))
    assert hf(faint) < 1.05 * hf(arr(img))


def test_brightness_and_contrast_defaults():
    rng = np.random.default_rng(4)
    mid = rng.integers(60, 190, (128, 128, 3), dtype=np.uint8)
    img = Image.fromarray(mid)
    mask = Image.new("L", img.size, 0)
    only = lambda **kw: arr(retouch(img, mask, img, RetouchParams(**{**OFF, **kw})))  # noqa: E731
    lin_in = srgb8_to_linear(mid).mean()
    bright = only(brightness=1.05)
    assert abs(srgb8_to_linear(bright.astype(np.uint8)).mean() / lin_in - 1.05) < 0.01
    con = only(contrast=1.1)
    assert abs(con.mean() - mid.mean()) < 1.0  # pivot = the image's mean
    assert 1.07 < con.std() / mid.std() < 1.13
    both = arr(retouch(img, mask, img))  # defaults: x1.05, x1.1
    assert both.mean() > mid.mean() + 2 and both.std() > mid.std() * 1.07


def test_highlights_roll_off_instead_of_clipping():
    ramp = np.repeat(np.repeat(np.arange(224, 256, dtype=np.uint8)[None, :], 8, axis=0)[..., None], 3, axis=2)
    img = Image.fromarray(ramp)
    mask = Image.new("L", img.size, 0)
    for p, lim in [(RetouchParams(), 252), (RetouchParams(brightness=1.1, contrast=1.2), 248)]:
        out = arr(retouch(img, mask, img, p))[0, :, 0]
        assert out[-1] == 255 and (np.diff(out) >= 0).all()
        assert (out[np.arange(224, 256) <= lim] < 255).all()  # a near-white sweep is not clipped flat
        assert len(np.unique(out)) >= 0.6 * len(out)  # and keeps its gradation


def test_tone_curve_is_monotonic_and_identity_when_neutral():
    for b, c in [(1.05, 1.1), (1.4, 1.5), (0.8, 0.7)]:
        lut = tone_curve(0.6, RetouchParams(brightness=b, contrast=c))
        assert (np.diff(lut.astype(int)) >= 0).all()
    assert np.array_equal(tone_curve(0.5, RetouchParams(brightness=1.0, contrast=1.0)), np.arange(256))


def test_defaults_run_on_a_real_sized_image_and_keep_the_size():
    img, mask, bg = scene((235, 225, 210), size=320, box=(80, 60, 240, 280))
    out = retouch(img, mask, bg)
    assert out.size == img.size and out.mode == "RGB"
