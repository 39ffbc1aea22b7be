"""A stage added the way the registry means stages to be added (tests/test_stage_registry.py).

This file plays the core module: the stage's parameters, its image function and its step.
Its registry entry and its asset plan are the two other pieces; nothing else is edited.
"""

from __future__ import annotations

from PIL import Image, ImageDraw
from pydantic import BaseModel, Field

from adgen_dagster.encoding import decode_png, preview_markdown
from adgen_dagster.stages import Compute, Files, Stage, StageContext

VERSION = "1"


class WatermarkParams(BaseModel):
    colour: str = Field("#ff00ff", description="Colour of the mark.")
    size: float = Field(0.3, gt=0, le=1, description="Side of the square mark, as a fraction of the image's height.")


def watermark(img: Image.Image, params: WatermarkParams) -> Image.Image:
    """A square mark in the top-left corner."""
    out = img.convert("RGB")
    side = max(1, round(out.height * params.size))
    ImageDraw.Draw(out).rectangle([0, 0, side - 1, side - 1], fill=params.colour)
    return out


def step(params: WatermarkParams) -> Compute:
    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        img = watermark(decode_png(files["retouched.png"]), params)
        return {"watermarked.png": img}, {"width": img.width, "height": img.height, "preview": preview_markdown(img)}

    return compute


# Its registry entry: read the retouched image, and stand in for it in every later stage.
WATERMARK = Stage("watermark", VERSION, WatermarkParams, "watermark", step, {"watermarked.png": "watermark"},
                  inputs=("retouched.png",), stands_in_for={"retouched.png": "watermarked.png"})
