"""Compositing: scale and placement, background kept, contact shadow, no fringes."""

import typing

import numpy as np
import pytest
from PIL import Image

from adgen_dagster.imaging.colour import relative_luminance
from adgen_dagster.imaging.colour import linear_to_srgb8, srgb8_to_linear
from adgen_dagster.imaging.composite import CompositeParams, composite

NO_SHADOW = dict(shadow_opacity=0.0, ambient_opacity=0.0)


def disc_cutout(w=300, h=220, r=80, ramp=4.0, colour=(230, 20, 20), outside=(255, 255, 255)) -> Image.Image:
    """A disc with a soft edge; the transparent area holds `outside` colours (a segmenter's junk)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx - w / 2 + 0.5, yy - h / 2 + 0.5)
    a = np.clip((r - d) / ramp + 0.5, 0.0, 1.0)
    rgb = np.where(a[..., None] > 0, np.array(colour, np.uint8), np.array(outside, np.uint8)).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, np.round(a * 255).astype(np.uint8)]), "RGBA")


def box_cutout(w=120, h=200) -> Image.Image:
    """A tall rectangle with transparent padding around it."""
    a = np.zeros((h + 40, w + 60), np.uint8)
    a[20 : 20 + h, 30 : 30 + w] = 255
    rgb = np.full(a.shape + (3,), 90, np.uint8)
    return Image.fromarray(np.dstack([rgb, a]), "RGBA")


def plain(w, h, colour=(200, 200, 200)) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def test_params_are_primitive_and_strict():
    for name, f in CompositeParams.model_fields.items():
        ann = f.annotation
        assert ann in (int, float, bool, str) or typing.get_origin(ann) is typing.Literal, name
        assert f.description, name
    with pytest.raises(Exception):
        CompositeParams(placment="top")


def test_linear_tables_round_trip_every_code():
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb8(srgb8_to_linear(codes)), codes)


@pytest.mark.parametrize("cut", [disc_cutout(), box_cutout()])
def test_product_within_margins_and_share(cut):
    p = CompositeParams(width=512, height=400)
    placed = composite(cut, plain(512, 400), p)
    x0, y0, x1, y1 = placed.box
    m = p.margin * 400
    assert placed.image.size == (512, 400) and placed.image.mode == "RGB"
    assert placed.mask.size == (512, 400) and placed.mask.mode == "L"
    assert x0 >= m - 1 and y0 >= m - 1 and x1 <= 512 - m + 1 and y1 <= 400 - m + 1
    assert (x1 - x0) <= p.max_share * 512 + 1 and (y1 - y0) <= p.max_share * 400 + 1
    # It takes the largest share allowed along its limiting side.
    assert max((x1 - x0) / (p.max_share * 512), (y1 - y0) / (p.max_share * 400)) > 0.99
    # The mask lies inside the box and covers it.
    ys, xs = np.nonzero(np.asarray(placed.mask) > 10)
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    assert abs(placed.scale - (x1 - x0) / (np.asarray(cut)[..., 3] > 10).any(axis=0).sum()) < 0.02


def test_placement():
    p = dict(width=400, height=400, margin=0.1)
    bottom = composite(disc_cutout(), plain(400, 400), CompositeParams(placement="bottom", **p)).box
    top = composite(disc_cutout(), plain(400, 400), CompositeParams(placement="top", **p)).box
    centre = composite(disc_cutout(), plain(400, 400), CompositeParams(placement="center", **p)).box
    assert abs(bottom[3] - 360) <= 1 and abs(top[1] - 40) <= 1
    assert abs((centre[1] + centre[3]) / 2 - 200) <= 1
    for b in (bottom, top, centre):
        assert abs((b[0] + b[2]) / 2 - 200) <= 1


def test_upscale_is_limited():
    tiny = disc_cutout(w=20, h=20, r=8, ramp=1.0)
    placed = composite(tiny, plain(400, 400), CompositeParams(width=400, height=400, max_upscale=2.0))
    assert placed.scale <= 2.0 + 1e-6
    assert placed.box[2] - placed.box[0] <= 34


def test_background_is_kept_far_from_the_product_and_resized_to_cover():
    rng = np.random.default_rng(0)
    bg = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), "RGB")
    placed = composite(disc_cutout(), bg, CompositeParams(width=400, height=300))
    a, b = np.asarray(placed.image), np.asarray(bg)
    x0, y0, x1, y1 = placed.box
    assert np.array_equal(a[: y0 - 20], b[: y0 - 20])  # above the product
    assert x0 > 90
    assert np.array_equal(a[:, : x0 - 80], b[:, : x0 - 80])  # far left
    assert np.array_equal(a[:, x1 + 80 :], b[:, x1 + 80 :])  # far right
    # A background of another size is scaled to cover and centre-cropped.
    wide = Image.new("RGB", (200, 100), (10, 120, 200))
    placed = composite(disc_cutout(), wide, CompositeParams(width=300, height=300))
    assert placed.image.size == (300, 300)
    assert tuple(np.asarray(placed.image)[5, 5]) == (10, 120, 200)


def test_shadow_darkens_under_the_product_only():
    bg = plain(400, 400)
    placed = composite(box_cutout(), bg, CompositeParams(width=400, height=400))
    a = np.asarray(placed.image, dtype=np.int16)
    x0, y0, x1, y1 = placed.box
    cx = (x0 + x1) // 2
    below = a[y1 + 1 : y1 + 4, cx - 10 : cx + 10].mean()
    assert below < 200 - 15  # contact shadow right under the base
    assert (a[: y0 - 2] == 200).all()  # nothing above the product
    assert (a[y0 : (y0 + y1) // 2, : max(0, x0 - 30)] == 200).all()  # nothing beside its upper half
    assert a[y1 + 25 :, cx].min() > a[y1 + 2, cx].max()  # the shadow fades away from the base
    # With both shadows off, the floor under the product is untouched.
    flat = np.asarray(composite(box_cutout(), bg, CompositeParams(width=400, height=400, **NO_SHADOW)).image)
    assert (flat[y1:] == 200).all()


def test_shadow_follows_only_parts_touching_the_floor():
    # A "bulb": a wide body with a narrow pin below it. Only the pin touches the floor.
    a = np.zeros((240, 200), np.uint8)
    a[0:180, 0:200] = 255
    a[180:240, 90:110] = 255
    cut = Image.fromarray(np.dstack([np.full(a.shape + (3,), 60, np.uint8), a]), "RGBA")
    placed = composite(cut, plain(400, 400), CompositeParams(width=400, height=400, ambient_opacity=0.0))
    img = np.asarray(placed.image, dtype=np.int16)
    x0, y0, x1, y1 = placed.box
    cx = (x0 + x1) // 2
    assert img[y1 + 1, cx].max() < 185
    assert img[y1 + 1, x0 + 5].min() >= 198  # under the body's corner: no contact shadow


def test_no_fringe_red_on_blue_in_linear_light():
    bg = plain(400, 400, (20, 40, 230))
    placed = composite(disc_cutout(ramp=6.0), bg, CompositeParams(width=400, height=400, **NO_SHADOW))
    img = np.asarray(placed.image, dtype=np.float32)
    m = np.asarray(placed.mask)
    edge = (m > 10) & (m < 245)
    assert edge.sum() > 200
    px = img[edge]
    red, blue = np.array([230, 20, 20], np.float32), np.array([20, 40, 230], np.float32)
    lum = relative_luminance(px / 255)
    lo = min(relative_luminance(red / 255), relative_luminance(blue / 255))
    hi = max(relative_luminance(red / 255), relative_luminance(blue / 255))
    assert lum.min() >= lo - 0.005  # no dark ring
    assert lum.max() <= hi + 0.005  # no white ring (the junk white under alpha 0 never leaks)
    assert px[:, 1].max() <= 41  # green never rises above the two colours'
    # Linear-light mixing: a half-covered pixel is a bright mix, not the dark sRGB average.
    half = (m > 118) & (m < 138)
    assert half.any()
    assert img[half][:, 0].mean() > 160 and img[half][:, 2].mean() > 160


def test_empty_alpha_raises():
    empty = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    with pytest.raises(ValueError, match="no product"):
        composite(empty, plain(200, 200), CompositeParams(width=200, height=200))
    haze = Image.new("RGBA", (100, 100), (255, 0, 0, 6))  # matting haze only
    with pytest.raises(ValueError, match="alpha"):
        composite(haze, plain(200, 200), CompositeParams(width=200, height=200))


def test_deterministic():
    a = composite(disc_cutout(), plain(256, 256), CompositeParams(width=256, height=256))
    b = composite(disc_cutout(), plain(256, 256), CompositeParams(width=256, height=256))
    assert a.image.tobytes() == b.image.tobytes() and a.mask.tobytes() == b.mask.tobytes() and a.box == b.box
