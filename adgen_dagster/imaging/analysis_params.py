"""The classical analysis's settings (`AnalysisParams`): every threshold in one validated place.

Apart from the analysis so the settings, the qwen2-vl analyzer and the tests can name
them without OpenCV.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .analysis_model import HEX_PATTERN


POSITIONS = ("top", "center", "bottom")


class AnalysisParams(BaseModel):
    """Knobs of the classical analyzer. Defaults are tuned for 1024x1024 studio shots."""

    model_config = ConfigDict(extra="forbid")

    # --- working resolutions -------------------------------------------------------
    stats_size: int = Field(
        256, ge=16, le=2048, description="Longest side (px) of the downsample used for tone, brightness, mood and text colour."
    )
    edge_size: int = Field(512, ge=16, le=4096, description="Longest side (px) of the downsample used for edge density (busyness).")
    estimate_size: int = Field(
        128, ge=16, le=1024, description="Longest side (px) of the downsample used to estimate the product when no mask is given."
    )

    # --- palette -------------------------------------------------------------------
    n_colours: int = Field(5, ge=1, le=8, description="Number of k-means clusters (before merging near-duplicates).")
    palette_size: int = Field(64, ge=8, le=512, description="Longest side (px) of the downsample clustered by k-means.")
    merge_delta_e: float = Field(10.0, ge=0.0, description="Clusters closer than this CIE76 delta E are merged into one colour.")
    min_colour_share: float = Field(0.02, ge=0.0, lt=1.0, description="Colours with a smaller share are dropped (shares renormalised).")
    seed: int = Field(0, description="Seed of OpenCV's RNG for k-means++ initialisation (determinism).")

    # --- tone ----------------------------------------------------------------------
    tone_axis_degrees: float = Field(
        45.0, description="Lab hue angle (deg, a* towards b*) of the 'warm' direction; its opposite is 'cool'."
    )
    tone_neutral_threshold: float = Field(
        4.0, ge=0.0, description="|mean chroma projected on the warm axis| below this (Lab units) is 'neutral'."
    )

    # --- text zone -----------------------------------------------------------------
    band_fraction: float = Field(
        0.34, gt=0.0, le=1.0, description="Height of each candidate band (top, center, bottom) as a fraction of the image height."
    )
    side_margin_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="Left/right page margin of the text box, fraction of width.")
    vertical_margin_fraction: float = Field(0.04, ge=0.0, lt=0.5, description="Top/bottom page margin of the text box, fraction of height.")
    product_gap_fraction: float = Field(
        0.03, ge=0.0, lt=0.5, description="Minimum gap between the text box and the product box, fraction of the image height."
    )
    min_zone_height_fraction: float = Field(0.12, gt=0.0, le=1.0, description="A text box needs at least this height (headline room).")
    relaxed_zone_height_fraction: float = Field(
        0.08, gt=0.0, le=1.0, description="Second-tier minimum height (no gap to the product) when nothing else fits."
    )
    min_zone_width_fraction: float = Field(0.4, gt=0.0, le=1.0, description="A text box needs at least this width.")
    position_order: str = Field(
        "top,bottom,center",
        pattern=r"^(top|center|bottom)(,(top|center|bottom)){0,2}$",
        description="Designer preference among positions, best first; used as a small tie-breaking penalty.",
    )
    position_penalty: float = Field(0.04, ge=0.0, description="Score penalty per rank in position_order.")
    busyness_weight: float = Field(1.0, ge=0.0, description="Weight of the zone's busyness in the zone score (lower is better).")
    size_weight: float = Field(0.25, ge=0.0, description="Weight of 'how much of the band is unusable' in the zone score.")
    overlap_weight: float = Field(2.0, ge=0.0, description="Weight of product overlap, only used when no free band exists.")
    canny_low: int = Field(30, ge=0, le=1000, description="Canny low threshold (8-bit grey) for edge density.")
    canny_high: int = Field(90, ge=0, le=1000, description="Canny high threshold (8-bit grey) for edge density.")
    busy_edge_density: float = Field(
        0.12, gt=0.0, le=1.0, description="Edge-pixel density (at edge_size) that counts as fully busy (busyness 1)."
    )
    detail_sigma: float = Field(3.0, gt=0.0, description="Gaussian sigma (px at edge_size) separating detail from smooth shading.")
    detail_floor: float = Field(
        1.5, ge=0.0, description="Mean |grey - blurred grey| (8-bit levels) at or below which a zone has no texture (grain, JPEG noise)."
    )
    detail_full: float = Field(8.0, gt=0.0, description="Mean |grey - blurred grey| (8-bit levels) that counts as fully busy.")

    # --- text colour ---------------------------------------------------------------
    min_contrast: float = Field(4.5, ge=1.0, le=21.0, description="Required WCAG contrast on the worst part of the zone.")
    worst_case_percentile: float = Field(
        5.0, ge=0.0, le=50.0, description="Worst-case background luminances are these low/high percentiles (p, 100-p) of the zone."
    )
    prefer_tinted: bool = Field(True, description="Prefer a tint of the background hue over plain black/white when it is legible.")
    near_black: str = Field("#1a1a1a", pattern=HEX_PATTERN, description="Neutral dark text colour.")
    white: str = Field("#ffffff", pattern=HEX_PATTERN, description="Neutral light text colour.")
    dark_tint_lightness: float = Field(22.0, ge=0.0, le=100.0, description="L* of the dark tint of the background hue.")
    light_tint_lightness: float = Field(97.0, ge=0.0, le=100.0, description="L* of the light tint of the background hue.")
    dark_tint_max_chroma: float = Field(28.0, ge=0.0, description="Maximum Lab chroma of the dark tint.")
    light_tint_max_chroma: float = Field(8.0, ge=0.0, description="Maximum Lab chroma of the light tint.")
    tint_min_chroma: float = Field(
        4.0, ge=0.0, description="Background chroma below this is treated as grey: no tinted candidates (black/white only)."
    )

    # --- product estimation (no mask) ----------------------------------------------
    estimate_delta_e: float = Field(
        12.0, gt=0.0, description="Pixels further than this (CIE76) from the smooth background fit are product."
    )
    estimate_edge_threshold: float = Field(
        3.0, gt=0.0, description="L* gradient (L* units per px at estimate_size) counted as a product outline."
    )
    min_product_area_fraction: float = Field(
        0.002, ge=0.0, lt=1.0, description="Estimated product blobs smaller than this fraction of the image are noise."
    )

    # --- mood ----------------------------------------------------------------------
    bright_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Mean luminance at or above this is 'bright'.")
    dark_threshold: float = Field(0.12, ge=0.0, le=1.0, description="Mean luminance at or below this is 'dark'.")
    muted_chroma: float = Field(12.0, ge=0.0, description="Mean Lab chroma below this is muted (minimal, airy, premium).")
    vivid_chroma: float = Field(35.0, ge=0.0, description="Mean Lab chroma above this is vivid (vivid, playful).")
    low_contrast: float = Field(12.0, ge=0.0, description="Std of L* below this is low contrast (calm, soft).")
    high_contrast: float = Field(28.0, ge=0.0, description="Std of L* above this is high contrast (bold).")
