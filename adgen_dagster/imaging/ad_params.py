"""What an ad creative is asked for (`AdParams`, the marketplace sizes) and what it gives back (`AdCreative`).

Apart from the renderer so the settings, the asset and the tests can name them without
pulling in fonts, OpenCV and the layout code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .ad_layout import AdLayout

AD_SIZES: dict[str, tuple[int, int]] = {
    "1080x1080": (1080, 1080),
    "1080x1350": (1080, 1350),
    "1080x1920": (1080, 1920),
    "1200x628": (1200, 628),
}

DARK = "#111111"
LIGHT = "#ffffff"
_SIZE_RE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


class AdParams(BaseModel):
    """How the ad creatives are laid out. Pixel sizes are on the output canvas."""

    model_config = ConfigDict(extra="forbid")

    sizes: str = Field(
        "1080x1080,1080x1350,1080x1920,1200x628",
        description="Comma-separated WIDTHxHEIGHT canvases to render (64..4096 px per side).",
    )
    max_headline_lines: int = Field(3, ge=1, le=8, description="Most lines the headline may wrap to.")
    max_subline_lines: int = Field(2, ge=1, le=6, description="Most lines the subline may wrap to.")
    min_font_px: int = Field(28, ge=8, le=200, description="Smallest headline size; below it the headline is ellipsized.")
    max_font_px: int = Field(104, ge=8, le=400, description="Largest headline size.")
    subline_scale: float = Field(0.5, ge=0.2, le=1.0, description="Subline size as a fraction of the headline size.")
    price_scale: float = Field(0.55, ge=0.2, le=1.0, description="Price size as a fraction of the headline size.")
    margin: float = Field(0.06, ge=0.0, le=0.25, description="Margin to the canvas edges, as a fraction of sqrt(width*height).")
    product_gap: float = Field(0.035, ge=0.0, le=0.25, description="Gap between text and product, as a fraction of sqrt(width*height).")
    font_path: str = Field("", description="TTF/OTF/TTC used first for all text; empty = the shipped NanumSquare.")
    price_badge: bool = Field(True, description="Draw the price in a rounded pill (False: a bold line).")
    min_contrast: float = Field(4.5, ge=1.0, le=21.0, description="WCAG contrast the text must reach (scrim added if needed).")
    fallback_headline: str = Field("New arrival", max_length=80, description="Headline when details have no headline, name or subline.")

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, v: str) -> str:
        names = [s.strip().lower() for s in v.split(",") if s.strip()]
        if not names:
            raise ValueError("sizes: give at least one WIDTHxHEIGHT")
        for n in names:
            m = _SIZE_RE.match(n)
            if not m or not all(64 <= int(g) <= 4096 for g in m.groups()):
                raise ValueError(f"sizes: {n!r} is not WIDTHxHEIGHT with 64..4096 px per side")
        return ",".join(dict.fromkeys(names))

    def size_list(self) -> list[tuple[str, tuple[int, int]]]:
        out = []
        for n in self.sizes.split(","):
            w, h = _SIZE_RE.match(n).groups()
            out.append((n, (int(w), int(h))))
        return out


@dataclass
class AdCreative:
    size_name: str  # "1080x1080"
    png: Image.Image  # RGB, exactly that size
    html: str  # standalone HTML page: the picture without text, the text live (see ad_html)
    text_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of everything drawn for the text
    text_colour: str  # "#rrggbb" of the headline/subline
    contrast: float  # see the module docstring: 1st-percentile per-pixel WCAG contrast
    scrim: bool = False  # whether a scrim was needed behind the text
    font_px: int = 0  # headline size used
    headline_lines: list[str] = field(default_factory=list)
    layout: AdLayout | None = None  # where every line is: drives both the PNG and the HTML
