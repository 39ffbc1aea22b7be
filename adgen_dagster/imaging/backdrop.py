"""The `studio` background: a photographer's seamless paper sweep, rendered procedurally.

No model and no randomness beyond the seed: the same details, product colours,
parameters and seed always give the same bytes.

How it is built
---------------
* Colours (`studio_palette`) come, in order of preference, from the product details'
  palette, from keywords in the style text (English and Korean, see `_THEMES` and
  `_TONES`), or from the product's own main colours: a light, low-chroma tint of the
  complementary (or analogous) hue, so the product stands out without a garish backdrop.
* The image is a wall colour curving into a floor colour (style ``sweep``: a smooth
  step where the paper bends) or a plain top-to-bottom gradient (style ``gradient``),
  lit by one soft key light (a wide Gaussian hotspot; the palette colour is the colour
  under the hotspot and the paper falls off to darker around it), a slightly brighter
  floor just in front of the bend, and a soft vignette.
* All mixing and lighting happen in linear light. The field is smooth, so it is
  rendered at a quarter of the resolution, encoded to sRGB, upscaled bicubically in
  float, and quantised once with triangular dither plus a little monochrome grain, so
  that 8-bit output shows no banding.
* The seed changes only subtle things: the grain and a small jitter of the light's
  position (`jitter`).
"""

from __future__ import annotations

import math
import re
from typing import Literal, Optional

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .backend import OnCpu
from .colour import hex_to_rgb, lab_to_srgb, linear_to_srgb, rgb_to_hex, srgb_to_lab, srgb_to_linear
from .details import ProductDetails

VERSION = "1"


class BackdropParams(BaseModel):
    """Settings of the procedural studio backdrop (Dagster run config / ADGEN_ env)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(1024, ge=16, le=8192, description="Output width in pixels.")
    height: int = Field(1024, ge=16, le=8192, description="Output height in pixels.")
    style: Literal["sweep", "gradient"] = Field(
        "sweep", description="'sweep': wall curving into a floor (seamless paper); 'gradient': plain top-to-bottom gradient."
    )
    floor_height: float = Field(
        0.36, ge=0.0, le=0.9, description="Sweep only: fraction of the image height below the wall-to-floor bend."
    )
    curve: float = Field(
        0.22, ge=0.01, le=1.0, description="Sweep only: height of the curved part of the paper, as a fraction of the image height (larger = softer horizon)."
    )
    floor_tone: float = Field(
        3.0, ge=-20.0, le=20.0, description="Lab lightness of a derived floor colour relative to the wall (positive = lighter floor)."
    )
    floor_glow: float = Field(
        0.06, ge=0.0, le=0.5, description="Sweep only: extra light on the floor just in front of the bend (0 = none)."
    )
    light_x: float = Field(0.5, ge=0.0, le=1.0, description="Horizontal position of the key light's hotspot (0 = left, 1 = right).")
    light_y: float = Field(0.5, ge=0.0, le=1.0, description="Vertical position of the key light's hotspot (0 = top, 1 = bottom).")
    light_radius: float = Field(
        0.55, gt=0.0, le=3.0, description="Size of the hotspot (Gaussian sigma as a fraction of the longer image side)."
    )
    light_falloff: float = Field(
        0.38, ge=0.0, le=0.95, description="How much darker (linear light) the paper gets far from the hotspot; 0 = evenly lit."
    )
    vignette: float = Field(0.15, ge=0.0, le=0.9, description="Darkening of the corners in linear light (0 = none).")
    grain: float = Field(
        0.5, ge=0.0, le=8.0, description="Monochrome grain, standard deviation in 8-bit levels, on top of the dither."
    )
    dither: bool = Field(True, description="Triangular dither of +-1 level before quantising to 8 bits (prevents banding).")
    jitter: float = Field(
        0.03, ge=0.0, le=0.2, description="Seed-driven random shift of the light position, as a fraction of the image size."
    )
    tint_lightness: float = Field(
        91.0, ge=40.0, le=99.0, description="Lab lightness of a backdrop derived from the product's colours."
    )
    light_product_lightness: float = Field(
        80.0, ge=40.0, le=99.0, description="Lab lightness of a derived backdrop when the product itself is very light (so a white product still stands out)."
    )
    tint_chroma: float = Field(
        9.0, ge=0.0, le=40.0, description="Lab chroma of a backdrop derived from the product's colours (low = tasteful)."
    )
    tint_harmony: Literal["complementary", "analogous"] = Field(
        "complementary", description="Hue of a derived backdrop relative to the product's main colourful hue."
    )


# --------------------------------------------------------------------------- colours

# (keywords, wall, floor). English keywords match at a word start ("pastels", "woody");
# Korean ones match anywhere (particles attach to words: "따뜻한", "파스텔톤").
_THEMES: list[tuple[tuple[str, ...], str, str]] = [
    (("christmas", "xmas", "크리스마스", "성탄"), "#8a2b2f", "#74242a"),
    (("summer", "beach", "여름", "해변"), "#d9eaf3", "#f0e3c8"),
    (("spring", "blossom", "봄", "벚꽃"), "#f5e3e6", "#ede0db"),
    (("autumn", "fall", "가을"), "#e7d1b6", "#d9bb98"),
    (("winter", "snow", "겨울", "눈꽃"), "#e3e9f0", "#eef2f6"),
    (("wood", "wooden", "우드", "나무", "원목"), "#dcc5a6", "#c9aa84"),
    (("warm", "cozy", "따뜻", "포근", "웜"), "#efe1cf", "#e6d3bc"),
    (("beige", "cream", "ivory", "sand", "베이지", "크림", "아이보리"), "#ebe2d3", "#e1d5c1"),
    (("pastel", "파스텔"), "#ebe3f2", "#e3dbec"),
    (("pink", "rose", "blush", "핑크", "분홍", "로즈"), "#f3dde2", "#ebd0d6"),
    (("mint", "민트"), "#d8eee3", "#cbe5d8"),
    (("ocean", "sea", "blue", "sky", "aqua", "바다", "블루", "파란", "파랑", "하늘"), "#d5e3ee", "#c7d7e5"),
    (("navy", "네이비"), "#2c3a55", "#26324a"),
    (("green", "nature", "natural", "sage", "botanical", "그린", "초록", "자연", "내추럴"), "#dce5d2", "#cdd8c1"),
    (("purple", "lavender", "lilac", "보라", "라벤더"), "#e4dcee", "#d9cfe7"),
    (("yellow", "lemon", "sunny", "노랑", "노란", "옐로"), "#f5edcc", "#eee1b5"),
    (("orange", "peach", "coral", "오렌지", "피치", "코랄", "살구"), "#f6dfcf", "#eecfba"),
    (("red", "빨강", "빨간", "레드"), "#eed3d0", "#e5c4c0"),
    (("gold", "골드"), "#e8d8b0", "#dbc696"),
    (("marble", "stone", "대리석", "스톤"), "#eae8e4", "#dddad4"),
    (("grey", "gray", "concrete", "silver", "회색", "그레이", "콘크리트", "실버"), "#d7d8da", "#cacbce"),
    (("white", "clean", "minimal", "simple", "화이트", "흰", "하얀", "깔끔", "심플", "미니멀"), "#f2f2f0", "#e8e8e5"),
]

# (keywords, Lab lightness of the wall or None to keep, chroma factor, colours when alone)
_TONES: list[tuple[tuple[str, ...], Optional[float], float, tuple[str, str]]] = [
    (("luxury", "luxurious", "premium", "black", "noir", "고급", "럭셔리", "프리미엄", "블랙", "검정", "검은"), 16.0, 0.6, ("#1c1c1f", "#26262a")),
    (("dark", "moody", "night", "다크", "어두운", "어둡", "밤"), 28.0, 0.8, ("#33363b", "#3c3f45")),
    (("light", "bright", "airy", "밝은", "화사"), 93.0, 0.8, ("#f2f2f0", "#e8e8e5")),
    (("soft", "muted", "calm", "subtle", "은은", "차분", "부드러운"), None, 0.6, ("#ebe6df", "#e1dbd3")),
]


def _find(keys: tuple[str, ...], text: str) -> int:
    """Earliest position of any keyword in `text`, or -1."""
    best = -1
    for k in keys:
        if k.isascii():
            m = re.search(r"\b" + re.escape(k.strip()), text)
            pos = m.start() if m else -1
        else:
            pos = text.find(k)
        if pos >= 0 and (best < 0 or pos < best):
            best = pos
    return best


def _lab(hex_colour: str) -> np.ndarray:
    return srgb_to_lab(np.asarray(hex_to_rgb(hex_colour), dtype=np.float32) / 255.0)


def _hex(lab: np.ndarray) -> str:
    return rgb_to_hex(np.clip(lab_to_srgb(np.asarray(lab, dtype=np.float32)), 0, 1) * 255.0)


def _delta_e(h1: str, h2: str) -> float:
    return float(np.linalg.norm(_lab(h1) - _lab(h2)))


def _derive_floor(wall: str, floor_tone: float) -> str:
    lab = _lab(wall)
    lab[0] = float(np.clip(lab[0] + floor_tone, 0.0, 100.0))
    return _hex(lab)


def style_colours(style: str) -> Optional[tuple[str, str]]:
    """(wall, floor) from keywords in a style text, or None when nothing matches."""
    text = (style or "").lower()
    if not text:
        return None
    themes = [(p, w, f) for keys, w, f in _THEMES if (p := _find(keys, text)) >= 0]
    tones = [(p, lig, cf, pair) for keys, lig, cf, pair in _TONES if (p := _find(keys, text)) >= 0]
    if not themes and not tones:
        return None
    if not themes:
        return min(tones)[3]
    _, wall, floor = min(themes)
    if not tones:
        return wall, floor
    _, lightness, chroma_factor, _ = min(tones)
    lw, lf = _lab(wall), _lab(floor)
    shift = 0.0 if lightness is None else lightness - float(lw[0])
    out = []
    for lab in (lw, lf):
        lab = lab.copy()
        lab[0] = float(np.clip(lab[0] + shift, 0.0, 100.0))
        # Dark paper in the same hue keeps a little more chroma than a plain scale would
        # (a dark pastel reads as grey otherwise).
        lab[1:] *= chroma_factor * (1.6 if shift < -30 else 1.0)
        out.append(_hex(lab))
    return out[0], out[1]


def _tint_from_product(product_colours: list[str], params: BackdropParams) -> tuple[str, str]:
    labs = []
    for c in product_colours:
        try:
            labs.append(_lab(c))
        except (ValueError, IndexError):
            continue
    if not labs:
        lab = np.array([params.tint_lightness, 0.3, 2.5], dtype=np.float32)
        wall = _hex(lab)
        return wall, _derive_floor(wall, params.floor_tone)
    dominant_l = float(labs[0][0])
    colourful = next((lab for lab in labs if math.hypot(float(lab[1]), float(lab[2])) >= 15.0), None)
    if colourful is None:
        # A neutral product (white, grey, black): a barely warm neutral paper.
        a, b = 0.3, 2.5
    else:
        hue = math.atan2(float(colourful[2]), float(colourful[1]))
        hue += math.pi if params.tint_harmony == "complementary" else math.radians(25.0)
        a, b = params.tint_chroma * math.cos(hue), params.tint_chroma * math.sin(hue)
    lightness = params.light_product_lightness if dominant_l >= 82.0 else params.tint_lightness
    wall = _hex(np.array([lightness, a, b], dtype=np.float32))
    return wall, _derive_floor(wall, params.floor_tone)


def studio_palette(
    details: ProductDetails, product_colours: list[str] | None, params: BackdropParams | None = None
) -> tuple[str, str]:
    """(wall/top colour, floor/bottom colour) as "#rrggbb".

    Order of preference: ``details.palette`` (the second entry becomes the floor only
    when it is a plausible partner of the first, within Lab ΔE 35, so a strong accent
    colour does not split the backdrop in two), then keywords in ``details.style``,
    then a tint derived from ``product_colours`` (main colours, most important first).
    """
    params = params or BackdropParams()
    if details.palette:
        wall = details.palette[0]
        if len(details.palette) > 1 and _delta_e(wall, details.palette[1]) <= 35.0:
            return wall, details.palette[1]
        return wall, _derive_floor(wall, params.floor_tone)
    from_style = style_colours(details.style)
    if from_style is not None:
        return from_style
    return _tint_from_product(product_colours or [], params)


# --------------------------------------------------------------------------- rendering


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / max(e1 - e0, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _field(wall_lin: np.ndarray, floor_lin: np.ndarray, w: int, h: int, lx: float, ly: float, p: BackdropParams) -> np.ndarray:
    """Linear-light backdrop at size (h, w) as float32 (h, w, 3); coordinates are pixel centres."""
    ys = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    xs = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    aspect_x, aspect_y = p.width / max(p.width, p.height), p.height / max(p.width, p.height)

    if p.style == "sweep":
        bend = 1.0 - p.floor_height
        t = _smoothstep(bend - p.curve / 2, bend + p.curve / 2, ys)  # 0 wall .. 1 floor
        # The floor catches the overhead light just in front of the bend and falls back
        # towards the camera: a soft bump rather than a step.
        glow = 1.0 + p.floor_glow * t * np.exp(-(((ys - bend) / max(p.floor_height, 0.05)) ** 2) * 0.7)
    else:
        t = _smoothstep(0.0, 1.0, ys)
        glow = np.ones_like(ys)

    dx = (xs - lx) * aspect_x
    if p.style == "sweep":
        # The floor recedes: the light pool on it looks flattened vertically. The distance
        # is continuous across the bend (only its slope changes), so there is no seam.
        bend = 1.0 - p.floor_height
        dy = np.where(ys > bend, (bend - ly) + (ys - bend) * 0.55, ys - ly) * aspect_y
    else:
        dy = (ys - ly) * aspect_y
    sigma = p.light_radius
    light = 1.0 - p.light_falloff * (1.0 - np.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma)))

    # Vignette on the normalised radius (corners = 1), eased so the centre stays clean.
    r2 = ((xs - 0.5) * 2.0) ** 2 * 0.5 + ((ys - 0.5) * 2.0) ** 2 * 0.5
    vig = 1.0 - p.vignette * _smoothstep(0.25, 1.0, r2)

    shade = (light * vig * glow).astype(np.float32)
    base = wall_lin[None, None, :] * (1.0 - t[..., None]) + floor_lin[None, None, :] * t[..., None]
    return (base * shade[..., None]).astype(np.float32)


def render_studio(
    details: ProductDetails,
    product_colours: list[str] | None,
    params: BackdropParams | None = None,
    seed: int = 0,
) -> Image.Image:
    """Render the studio backdrop as an RGB image of ``params.width`` x ``params.height``."""
    p = params or BackdropParams()
    wall, floor = studio_palette(details, product_colours, p)
    wall_lin = srgb_to_linear(np.asarray(hex_to_rgb(wall), dtype=np.float32) / 255.0)
    floor_lin = srgb_to_linear(np.asarray(hex_to_rgb(floor), dtype=np.float32) / 255.0)

    rng = np.random.default_rng(int(seed) % (2**63))
    jx, jy = rng.uniform(-1.0, 1.0, size=2) * p.jitter
    lx = float(np.clip(p.light_x + jx, 0.0, 1.0))
    ly = float(np.clip(p.light_y + jy * 0.5, 0.0, 1.0))

    W, H = p.width, p.height
    sw, sh = max(16, -(-W // 4)), max(16, -(-H // 4))
    small = _field(wall_lin, floor_lin, sw, sh, lx, ly, p)
    enc = linear_to_srgb(small) * np.float32(255.0)
    full = cv2.resize(enc, (W, H), interpolation=cv2.INTER_CUBIC)

    noise = None
    if p.dither:
        noise = rng.random((H, W), dtype=np.float32) - rng.random((H, W), dtype=np.float32)
    if p.grain > 0:
        g = rng.standard_normal((H, W), dtype=np.float32) * np.float32(p.grain)
        noise = g if noise is None else noise + g
    if noise is not None:
        full += noise[..., None]
    out = np.clip(full + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


class StudioBackground(OnCpu):
    """The `studio` background (`imaging.backend.BackgroundRenderer`): `render_studio`."""

    name = "studio"
    description = "CPU, no weights: studio sweep in the product's colours"

    def __call__(self, details: ProductDetails, product_colours: list[str] | None,
                 params: BackdropParams | None = None, seed: int = 0) -> Image.Image:
        return render_studio(details, product_colours, params, seed=seed)
