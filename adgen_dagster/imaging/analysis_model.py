"""The analysis result: a versioned pydantic model and its JSON schema.

The same model validates the classical analyzer's output and (later) a vision-language
model's JSON answer, so the ad renderer can rely on every field. Bump
`ANALYSIS_SCHEMA_VERSION` when a field changes meaning; `schemas/analysis.schema.json`
in the repo is generated from this model and a test keeps the two in sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ANALYSIS_SCHEMA_VERSION = "1.0"

HexColour = str  # "#rrggbb", validated by pattern below
HEX_PATTERN = r"^#[0-9a-f]{6}$"


class Box(BaseModel):
    """A pixel box in the analysed image: left, top, right (exclusive), bottom (exclusive)."""

    model_config = ConfigDict(extra="forbid")
    x0: int = Field(ge=0)
    y0: int = Field(ge=0)
    x1: int = Field(ge=0)
    y1: int = Field(ge=0)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


class ColourShare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hex: str = Field(pattern=HEX_PATTERN)
    share: float = Field(ge=0.0, le=1.0, description="Fraction of the image's pixels near this colour.")


class TextZone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: Literal["top", "center", "bottom"]
    box: Box
    busyness: float = Field(ge=0.0, le=1.0, description="Mean edge density in the zone (0 = flat).")


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = ANALYSIS_SCHEMA_VERSION
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    tone: Literal["warm", "cool", "neutral"]
    brightness: float = Field(ge=0.0, le=1.0, description="Mean relative luminance (0 black, 1 white).")
    main_colours: list[ColourShare] = Field(min_length=1, max_length=8)
    mood: list[str] = Field(min_length=1, max_length=5)
    product_box: Box
    text_zone: TextZone
    text_colour: str = Field(pattern=HEX_PATTERN)
    text_contrast: float = Field(ge=1.0, le=21.0, description="WCAG 2 contrast of text colour on the zone.")
    backend: str = "classical"


SCHEMA_ID = f"urn:adgen-dagster:schema:analysis:{ANALYSIS_SCHEMA_VERSION}"
SCHEMA_PATH = "schemas/analysis.schema.json"  # relative to the repository root


def analysis_json_schema() -> dict:
    """The JSON schema of `Analysis` (draft 2020-12), with a versioned `$id` and title."""
    schema = Analysis.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = f"Analysis (schema {ANALYSIS_SCHEMA_VERSION})"
    return schema


def analysis_json_schema_text() -> str:
    """The schema exactly as committed: pretty-printed, sorted keys, trailing newline."""
    return json.dumps(analysis_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_analysis_json_schema(path: str | Path | None = None) -> Path:
    """(Re)write the committed schema file; returns its path."""
    target = Path(path) if path is not None else Path(__file__).resolve().parents[2] / SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(analysis_json_schema_text(), encoding="utf-8")
    return target


if __name__ == "__main__":  # python -m adgen_dagster.imaging.analysis_model [path]
    import sys

    print(write_analysis_json_schema(sys.argv[1] if len(sys.argv) > 1 else None))
