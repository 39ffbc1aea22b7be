"""Settings of the cut-out stage: the classical path's, the neural path's, `auto`'s choice and the gate.

One model for the whole stage, so the Launchpad and `ADGEN_SEGMENT__*` reach every knob
whichever segmenter runs, and a change of any of them changes the cache key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SegmentParams(BaseModel):
    """Parameters of the classical cut-out (defaults tuned on product photos)."""

    model_config = ConfigDict(extra="forbid")

    work_size: int = Field(512, ge=64, le=2048, description="Long side (px) of the working copy used for the coarse segmentation.")
    border_width: float = Field(0.02, gt=0, le=0.2, description="Width of the border ring sampled for the background model, as a fraction of the work long side.")
    bg_model: Literal["quadratic", "linear", "constant"] = Field(
        "quadratic", description="Shape of the background colour surface fitted to the border (quadratic covers gradients and vignettes)."
    )
    noise_floor: float = Field(0.8, gt=0, description="Smallest background noise level assumed (Lab units), so clean white backgrounds do not give hair-trigger thresholds.")
    fg_threshold: float = Field(3.0, gt=0, description="Lab distance to the background above which a pixel is a product candidate (raised automatically on noisy backgrounds).")
    strong_threshold: float = Field(12.0, gt=0, description="Lab distance above which a candidate is definite product (before erosion).")
    shadow_chroma: float = Field(4.0, ge=0, description="Largest chroma difference (Lab a/b) to the background for a pixel to count as shadow (or a lighter/darker patch of floor).")
    shadow_depth: float = Field(55.0, ge=0, description="Largest lightness difference (Lab L) to the background a shadow can have; deeper tones are product.")
    shadow_roughness: float = Field(0.8, gt=0, description="Largest local lightness roughness (Lab L removed by a small blur) inside a shadow: shadows are smooth, edges and texture are not.")
    shadow_gradient: float = Field(
        1.5, gt=0, description="Largest lightness slope inside a shadow (Lab L per pixel at a 512 px work size, scaled for other sizes)."
    )
    edge_roughness: float = Field(
        1.2, gt=0, description="Roughness (see shadow_roughness) that counts as product evidence: an edge or texture. Nothing inside the convex hull of grouped evidence is called shadow."
    )
    hull_group: float = Field(0.05, ge=0, le=0.5, description="Evidence pieces closer than twice this (fraction of the work long side) are grouped into one hull.")
    shadow_erode: int = Field(2, ge=0, le=16, description="Erosion radius (work px) that stops the shadow flood from leaking into a product through thin gaps in its outline.")
    grabcut_iters: int = Field(2, ge=0, le=10, description="GrabCut iterations (0 disables GrabCut and keeps the seeded mask).")
    grabcut_size: int = Field(384, ge=0, le=2048, description="Long side (px) of the copy GrabCut runs on, at most the work size (0: the work size); the boundary is snapped at work size afterwards.")
    min_component: float = Field(0.02, ge=0, le=1, description="Pieces smaller than this fraction of the largest piece are dropped unless clearly product-coloured.")
    min_hole_area: float = Field(0.0005, ge=0, le=1, description="Enclosed background-coloured regions smaller than this fraction of the image are filled.")
    min_hole_width: float = Field(0.008, ge=0, le=1, description="Enclosed regions narrower than this (inscribed radius, fraction of the work long side) are filled: letters, seams.")
    bridge_px: int = Field(3, ge=0, le=32, description="Closing radius (work px) used when looking for holes: background-coloured parts reaching the outline through a gap this narrow are filled.")
    snap_px: int = Field(5, ge=0, le=32, description="Half-width (work px) of the band where the coarse boundary snaps to the local colour evidence (0 disables).")
    hole_edge: float = Field(1.0, gt=0, description="Median slope of the background distance (Lab units per work px) around an enclosed region above which it is a real hole with a sharp outline, not a soft highlight.")
    band_px: int = Field(2, ge=0, le=32, description="Extra half-width (full-resolution px) of the matting band beyond the upscaling factor.")
    matting_radius: int = Field(6, ge=1, le=64, description="Radius (full-resolution px) of the local foreground/background colour estimates in the band.")
    guided_eps: float = Field(2e-4, gt=0, description="Regulariser of the guided-filter fallback matte (image variance units, 0..1 scale).")
    confidence_low: float = Field(0.06, ge=0, description="Foreground/background colour distance (RGB 0..1) below which the colour matte is not trusted.")
    confidence_high: float = Field(0.18, gt=0, description="Colour distance above which the colour matte is fully trusted.")
    seed: int = Field(0, description="Seed of OpenCV's RNG (GrabCut's k-means) for deterministic output.")

    # The neural cut-out (`u2netp`, and the neural branch of `auto`): see imaging/saliency.py.
    detail_peak: float = Field(0.5, ge=0, le=1, description="When the model's peak saliency is below this, nothing stands out: the product "
                               "fills the frame (a detail shot) and the whole photo is kept.")
    edge_gain: float = Field(3.0, ge=1, le=8, description="Steepness of the upsampled map's edges (1: as upsampled).")
    second_view_uncertain: float = Field(0.3, ge=0, description="When the full view has more half-sure pixels per product pixel than "
                                         "this, the model also looks at the photo at `second_view_size` (0: always; large: never).")
    second_view_size: int = Field(256, ge=128, le=640, description="Side (px) of the coarser second view (multiple of 32).")
    second_view_agreement: float = Field(0.7, ge=0, le=1, description="When the two views overlap less than this (IoU), the one whose "
                                         "outline follows the photo's edges better is kept.")
    # `auto`: which path for this photo
    studio_noise: float = Field(1.5, gt=0, description="A backdrop is a plain studio backdrop (the classical path may be used) when the "
                                "border's colour noise is at most this (Lab units)...")
    studio_fit: float = Field(0.5, ge=0, le=1, description="... at least this fraction of the border fits the smooth backdrop model ...")
    studio_lightness: float = Field(60.0, ge=0, le=100, description="... and the backdrop's lightness (Lab L) is at least this.")
    studio_agreement: float = Field(0.75, ge=0, le=1, description="On a studio backdrop, the classical cut-out is used when the neural one "
                                    "overlaps it less than this (IoU), or found nothing: a plain backdrop's model is then the better judge.")
    # The quality gate: a cut-out that cannot be trusted fails its product instead of making a bad ad.
    gate: bool = Field(True, description="Fail a product whose cut-out cannot be trusted (false: keep it, with a warning in the metadata).")
    gate_min_coverage: float = Field(0.003, ge=0, le=1, description="A cut-out covering less of the photo than this is nothing, or a speck.")
    gate_max_uncertain: float = Field(1.0, gt=0, description="Half-sure pixels (alpha 0.2-0.8 before edges are steepened) per product pixel "
                                      "above which the model is not confident.")
    gate_frame_sides: int = Field(3, ge=1, le=4, description="A product cut by this many sides of the frame (or more) ...")
    gate_fills_frame: float = Field(0.5, ge=0, le=1, description="... is rejected unless it covers at least this much of the photo "
                                    "(then it is a detail shot that fills the frame, and is kept).")
