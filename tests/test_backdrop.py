"""The studio backdrop: size, determinism, colours, lighting, no banding."""

import math
import typing

import numpy as np
import pytest
from pydantic import ValidationError

from adgen_dagster.imaging.backdrop import BackdropParams, render_studio, studio_palette, style_colours
from adgen_dagster.imaging.colour import hex_to_rgb, srgb_to_lab
from adgen_dagster.imaging.details import ProductDetails


def lab_of(rgb) -> np.ndarray:
    return srgb_to_lab(np.asarray(rgb, dtype=np.float32) / 255.0)


def lab_hex(h: str) -> np.ndarray:
    return lab_of(hex_to_rgb(h))


def chroma(lab) -> float:
    return math.hypot(float(lab[1]), float(lab[2]))


def hue_deg(lab) -> float:
    return math.degrees(math.atan2(float(lab[2]), float(lab[1])))


def patch_mean(img, cx: float, cy: float, r: int = 12) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[:2]
    x, y = int(cx * w), int(cy * h)
    return a[y - r : y + r, x - r : x + r].reshape(-1, 3).mean(axis=0)


def test_params_are_primitive_and_strict():
    for name, f in BackdropParams.model_fields.items():
        ann = f.annotation
        assert ann in (int, float, bool, str) or typing.get_origin(ann) is typing.Literal, name
        assert f.description, name
    with pytest.raises(ValidationError):
        BackdropParams(colour="#ffffff")


def test_size_mode_and_default_size():
    img = render_studio(ProductDetails(), None, BackdropParams(width=320, height=200))
    assert img.size == (320, 200) and img.mode == "RGB"
    assert render_studio(ProductDetails(), None).size == (1024, 1024)


def test_deterministic_per_seed_and_subtly_different_across_seeds():
    d = ProductDetails(style="warm")
    p = BackdropParams(width=256, height=256)
    a = render_studio(d, None, p, seed=7)
    b = render_studio(d, None, p, seed=7)
    c = render_studio(d, None, p, seed=8)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(c, dtype=np.int16))
    assert diff.mean() < 3.0  # only grain and a small light jitter change


def test_palette_colour_is_the_wall_under_the_light():
    d = ProductDetails(palette=["#3366aa"])
    img = render_studio(d, None, BackdropParams(width=256, height=256, jitter=0.0), seed=1)
    got = lab_of(patch_mean(img, 0.5, 0.5))
    assert np.linalg.norm(got - lab_hex("#3366aa")) < 2.0
    # With the default light jitter it is still close.
    img = render_studio(d, None, BackdropParams(width=256, height=256), seed=3)
    assert np.linalg.norm(lab_of(patch_mean(img, 0.5, 0.45)) - lab_hex("#3366aa")) < 5.0


def test_palette_floor_only_when_it_is_a_partner():
    assert studio_palette(ProductDetails(palette=["#e8e0d0", "#ddd2bf"]), None) == ("#e8e0d0", "#ddd2bf")
    wall, floor = studio_palette(ProductDetails(palette=["#e8e0d0", "#1030a0"]), None)
    assert wall == "#e8e0d0" and floor != "#1030a0"
    assert np.linalg.norm(lab_hex(floor) - lab_hex(wall)) < 6.0


def test_palette_beats_style_and_style_beats_product_colours():
    d = ProductDetails(style="mint", palette=["#ffeedd"])
    assert studio_palette(d, ["#ff0000"])[0] == "#ffeedd"
    assert studio_palette(ProductDetails(style="mint"), ["#ff0000"]) == style_colours("mint")


def test_style_keywords_change_hue():
    pink = lab_hex(studio_palette(ProductDetails(style="soft pink studio"), None)[0])
    mint = lab_hex(studio_palette(ProductDetails(style="mint"), None)[0])
    ocean = lab_hex(studio_palette(ProductDetails(style="ocean breeze"), None)[0])
    assert pink[1] > 3 and mint[1] < -3 and ocean[2] < -3
    for lab in (pink, mint, ocean):
        assert lab[0] > 80 and chroma(lab) < 20  # light, tasteful paper


def test_korean_keywords():
    assert studio_palette(ProductDetails(style="파스텔 톤"), None) == style_colours("pastel")
    assert studio_palette(ProductDetails(style="따뜻한 느낌"), None) == style_colours("warm")
    lux = lab_hex(studio_palette(ProductDetails(style="고급스러운"), None)[0])
    assert lux[0] < 25


def test_tone_modifiers_keep_the_theme_hue():
    dark_blue = lab_hex(studio_palette(ProductDetails(style="dark blue"), None)[0])
    assert dark_blue[0] < 40 and dark_blue[2] < -3
    assert style_colours("no keyword here") is None


def test_product_colours_give_a_tasteful_complementary_tint():
    red = lab_hex("#d02020")
    wall, floor = studio_palette(ProductDetails(), ["#d02020", "#202020"])
    lab = lab_hex(wall)
    assert lab[0] > 85 and 3 < chroma(lab) < 14
    dh = abs((hue_deg(lab) - hue_deg(red) + 180) % 360 - 180)
    assert dh > 150  # complementary
    lab_an = lab_hex(studio_palette(ProductDetails(), ["#d02020"], BackdropParams(tint_harmony="analogous"))[0])
    assert abs((hue_deg(lab_an) - hue_deg(red) + 180) % 360 - 180) < 40
    assert abs(float(lab_hex(floor)[0]) - float(lab[0])) < 6


def test_white_product_gets_a_darker_backdrop_and_neutral_one_is_neutral():
    lab = lab_hex(studio_palette(ProductDetails(), ["#f6f6f6", "#dddddd"])[0])
    assert lab[0] < 85 and chroma(lab) < 5
    lab = lab_hex(studio_palette(ProductDetails(), None)[0])
    assert lab[0] > 85 and chroma(lab) < 5


def test_vignette_darkens_corners():
    d = ProductDetails(palette=["#d0d0d0"])
    base = dict(width=256, height=256, jitter=0.0, light_falloff=0.0, floor_glow=0.0, style="gradient")
    flat = np.asarray(render_studio(d, None, BackdropParams(vignette=0.0, **base)), dtype=np.float32)
    vig = np.asarray(render_studio(d, None, BackdropParams(vignette=0.3, **base)), dtype=np.float32)
    corner = vig[:16, :16].mean()
    assert corner < vig[120:136, 120:136].mean() - 10
    assert corner < flat[:16, :16].mean() - 10
    assert abs(vig[120:136, 120:136].mean() - flat[120:136, 120:136].mean()) < 1.5


def test_light_falls_off_from_the_hotspot():
    img = render_studio(ProductDetails(palette=["#c8c8c8"]), None, BackdropParams(width=256, height=256, jitter=0.0))
    centre = patch_mean(img, 0.5, 0.5).mean()
    top = patch_mean(img, 0.5, 0.06).mean()
    assert top < centre - 5


def test_sweep_moves_from_wall_to_floor_and_gradient_is_smooth():
    d = ProductDetails(palette=["#c0d0e0", "#d8c8b8"])
    img = render_studio(d, None, BackdropParams(width=256, height=256, jitter=0.0, vignette=0.0, light_falloff=0.0, floor_glow=0.0))
    a = np.asarray(img, dtype=np.float32)
    wall_b_minus_r = (a[40:60, 100:150, 2] - a[40:60, 100:150, 0]).mean()
    floor_b_minus_r = (a[230:250, 100:150, 2] - a[230:250, 100:150, 0]).mean()
    assert wall_b_minus_r > 20 and floor_b_minus_r < -10
    col = a[:, 128].mean(axis=1)
    smooth = np.convolve(col, np.ones(9) / 9, mode="valid")
    assert np.abs(np.diff(smooth)).max() < 2.0  # no hard horizon line


def test_no_banding():
    img = render_studio(ProductDetails(palette=["#e8e4de"]), None, seed=5)
    a = np.asarray(img, dtype=np.float32)
    row = a[200, :, 1]
    assert len(np.unique(row)) >= 8
    # Runs of identical values are short: the dither breaks up 8-bit steps.
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, row, -1]) != 0))
    assert runs.max() < 40
    # The local mean follows a smooth curve (no staircase).
    smooth = np.convolve(row, np.ones(31) / 31, mode="valid")
    assert np.abs(np.diff(smooth)).max() < 0.35
