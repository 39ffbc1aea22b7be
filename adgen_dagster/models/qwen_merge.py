"""The model's valid fields merged with the classical analysis, each choice checked against a measurement.

What needs measuring (size, brightness, boxes, contrast) always comes from the classical
analysis; the model's text position and colour are kept only where the measurement
agrees they work, and every field says where it came from.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PIL import Image

from adgen_dagster.imaging.analysis_model import Analysis, ColourShare
from adgen_dagster.imaging.analysis_params import AnalysisParams
from adgen_dagster.imaging.analyze import analyze_classical
from adgen_dagster.imaging.colour import contrast_ratio, hex_luminance, hex_to_rgb, relative_luminance, srgb_to_lab

BACKEND = "qwen2-vl"
# Every field of the result, as named in `field_sources`.
RESULT_FIELDS = ("width", "height", "tone", "brightness", "main_colours", "mood", "product_box", "text_zone.position",
                 "text_zone.box", "text_zone.busyness", "text_colour", "text_contrast")
# Result field <- answer field, for the fields the model may supply.
FROM_ANSWER = {"tone": "tone", "main_colours": "main_colours", "mood": "mood", "text_zone.position": "text_position",
               "text_colour": "text_colour"}


def measured_shares(image: Image.Image, colours: list[str], work_size: int = 64) -> list[ColourShare]:
    """Each colour's share of the image's pixels (nearest in Lab), largest first."""
    small = image.convert("RGB")
    small.thumbnail((work_size, work_size), Image.Resampling.BOX)
    lab = srgb_to_lab(np.asarray(small, np.float32).reshape(-1, 3) / 255.0)
    ref = srgb_to_lab(np.array([hex_to_rgb(c) for c in colours], np.float32) / 255.0)
    nearest = np.argmin(((lab[:, None, :] - ref[None, :, :]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(colours)).astype(np.float64)
    shares = counts / max(1.0, counts.sum())
    order = sorted(range(len(colours)), key=lambda i: -shares[i])
    return [ColourShare(hex=colours[i], share=round(float(shares[i]), 4)) for i in order]


def zone_contrast(image: Image.Image, box, colour: str, max_pixels: int = 250_000) -> float:
    """WCAG contrast of `colour` on the mean relative luminance of `box` (as `text_contrast` is defined)."""
    crop = np.asarray(image.convert("RGB").crop((box.x0, box.y0, box.x1, box.y1)), np.float32)
    step = max(1, int(np.sqrt(crop.shape[0] * crop.shape[1] / max_pixels)))
    lum = float(relative_luminance(crop[::step, ::step] / 255.0).mean())
    return contrast_ratio(hex_luminance(colour), lum)


def _classical_at(image, mask, params: AnalysisParams, position: str) -> Optional[Analysis]:
    """The classical analysis with its text box forced to `position`; None if no box is free there."""
    forced = params.model_copy(update={"position_order": position, "position_penalty": 1000.0})
    result = analyze_classical(image, mask, forced)
    return result if result.text_zone.position == position else None


def merge_answer(
    values: dict[str, Any],
    errors: dict[str, str],
    image: Image.Image,
    mask: Optional[Image.Image],
    params: AnalysisParams,
    classical: Optional[Analysis] = None,
) -> tuple[Analysis, dict[str, str], dict[str, str]]:
    """(analysis, field_sources, fallback_reasons) from the model's valid fields and the classical analysis."""
    base = classical if classical is not None else analyze_classical(image, mask, params)
    sources = {f: "classical" for f in RESULT_FIELDS}
    reasons: dict[str, str] = {}
    for result_field, answer_field in FROM_ANSWER.items():
        if answer_field not in values:
            reasons[result_field] = f"answer: {errors.get(answer_field, 'missing')}"

    update: dict[str, Any] = {"backend": BACKEND}
    if "tone" in values:
        update["tone"], sources["tone"] = values["tone"], BACKEND
    if "mood" in values:
        update["mood"], sources["mood"] = list(values["mood"]), BACKEND
    if "main_colours" in values:
        update["main_colours"] = [c.model_dump() for c in measured_shares(image, values["main_colours"])]
        sources["main_colours"] = BACKEND

    # Text box: the classical box at the model's position, when there is a free one.
    zoned = base
    want = values.get("text_position")
    if want is not None:
        if want == base.text_zone.position:
            sources["text_zone.position"] = BACKEND
        else:
            at = _classical_at(image, mask, params, want)
            if at is not None:
                zoned = at
                sources["text_zone.position"] = BACKEND
            else:
                reasons["text_zone.position"] = (f"no free text box at {want} (the product is in the way); "
                                                 f"kept the classical {base.text_zone.position}")
    update["text_zone"] = zoned.text_zone.model_dump()
    update["text_colour"], update["text_contrast"] = zoned.text_colour, zoned.text_contrast

    # Text colour: the model's, if legible on that box.
    colour = values.get("text_colour")
    if colour is not None:
        c = zone_contrast(image, zoned.text_zone.box, colour)
        if c >= params.min_contrast:
            update["text_colour"], update["text_contrast"] = colour, round(float(np.clip(c, 1.0, 21.0)), 3)
            sources["text_colour"] = BACKEND
        else:
            reasons["text_colour"] = (f"{colour} has contrast {c:.2f} on the {zoned.text_zone.position} text box, "
                                      f"below {params.min_contrast:g}; used the classical {zoned.text_colour}")
    return Analysis.model_validate({**base.model_dump(mode="json"), **update}), sources, reasons


# ------------------------------------------------------------------------------------
