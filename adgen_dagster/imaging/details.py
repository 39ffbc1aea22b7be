"""Product details: the text and style a shop owner attaches to one photo.

Details arrive from an optional sidecar JSON next to the upload (or, later, a catalog
row). Every field has a default so a bare photo still yields a complete ad, and the
parser is forgiving about *values* but strict about *shape*: a malformed sidecar is a
readable error for that product only, never a crash elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_TEXT = 200
MAX_DETAILS_BYTES = 1 << 20  # a sidecar or --details file; readers refuse larger ones before reading them


class DetailsError(ValueError):
    """The sidecar exists but cannot be used; the message names what is wrong."""


class ProductDetails(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str = Field("", max_length=MAX_TEXT, description="Product name, shown in HTML alt text.")
    headline: str = Field("", max_length=MAX_TEXT, description="Main ad line; defaults to the name.")
    subline: str = Field("", max_length=MAX_TEXT, description="Optional second line under the headline.")
    price: str = Field("", max_length=40, description="Optional price text, e.g. '₩29,000' or '$19.99'.")
    style: str = Field("", max_length=MAX_TEXT, description="Style prompt for the background, e.g. 'warm wood, soft light'.")
    palette: list[str] = Field(default_factory=list, description="Optional background colours as #rrggbb.")
    seed: Optional[int] = Field(None, description="Background seed; defaults to one derived from the product id.")

    @field_validator("price", mode="before")
    @classmethod
    def _price_to_text(cls, v):
        # Spreadsheets and hand-written JSON give prices as numbers; keep them as text.
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{v:g}"
        return v

    @field_validator("palette", mode="before")
    @classmethod
    def _palette(cls, v):
        if v is None:
            return []
        if isinstance(v, str):
            v = [p for p in v.replace(";", ",").split(",") if p.strip()]
        if not isinstance(v, (list, tuple)):
            # a ValueError, so pydantic reports it as this field's problem (a TypeError would escape)
            raise ValueError(f"expected a list of #rrggbb colours or a comma-separated string, got {type(v).__name__}")
        out = []
        for p in v:
            p = str(p).strip().lower()
            if not p.startswith("#"):
                p = "#" + p
            if len(p) != 7 or any(c not in "0123456789abcdef" for c in p[1:]):
                raise ValueError(f"palette colour {p!r} is not #rrggbb")
            out.append(p)
        return out

    @property
    def display_headline(self) -> str:
        return self.headline or self.name

    def seed_for(self, product_id: str) -> int:
        """The background seed: the details' own, else a stable one from the product id."""
        if self.seed is not None:
            return int(self.seed)
        return int.from_bytes(hashlib.sha256(product_id.encode("utf-8")).digest()[:4], "big")


def parse_details(data: bytes | str | None, source: str = "sidecar") -> ProductDetails:
    """Parse sidecar bytes into details; `None` means no sidecar (all defaults)."""
    if data is None:
        return ProductDetails()
    if len(data) > MAX_DETAILS_BYTES:
        raise DetailsError(f"{source}: {len(data) / 1e6:.1f} MB of details, larger than the {MAX_DETAILS_BYTES / 1e6:.0f} MB limit")
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DetailsError(f"{source}: not valid UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise DetailsError(f"{source}: not usable JSON (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise DetailsError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    try:
        return ProductDetails.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise DetailsError(f"{source}: {problems}") from None
