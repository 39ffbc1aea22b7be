"""Each asset check passes on good output and fails on bad output."""

import json

import numpy as np
from PIL import Image

from adgen_dagster.imaging.analysis_model import Analysis
from assets_defs.checks import ad_contrast_result, analysis_schema_result, mask_coverage, mask_coverage_result


def mask_with(fraction: float) -> Image.Image:
    arr = np.zeros((100, 100), np.uint8)
    arr.reshape(-1)[: int(fraction * arr.size)] = 255
    return Image.fromarray(arr)


def test_mask_coverage():
    assert mask_coverage_result(mask_coverage(mask_with(0.3)), "p").passed
    empty = mask_coverage_result(mask_coverage(mask_with(0.0)), "p")
    full = mask_coverage_result(mask_coverage(mask_with(1.0)), "p")
    assert not empty.passed and "0.00%" in empty.description
    assert not full.passed and "100.00%" in full.description


GOOD = {
    "width": 1024, "height": 1024, "tone": "warm", "brightness": 0.7,
    "main_colours": [{"hex": "#eeddcc", "share": 0.8}, {"hex": "#333333", "share": 0.2}],
    "mood": ["warm", "calm"], "product_box": {"x0": 300, "y0": 400, "x1": 700, "y1": 950},
    "text_zone": {"position": "top", "box": {"x0": 60, "y0": 60, "x1": 964, "y1": 300}, "busyness": 0.02},
    "text_colour": "#222222", "text_contrast": 12.1,
}


def test_analysis_schema():
    assert analysis_schema_result(json.dumps(GOOD), "p").passed
    assert Analysis.model_validate(GOOD).text_zone.position == "top"
    for bad in ({**GOOD, "tone": "hot"}, {**GOOD, "text_colour": "red"}, {k: v for k, v in GOOD.items() if k != "mood"}):
        res = analysis_schema_result(bad, "p")
        assert not res.passed and "does not match the schema" in res.description
    assert not analysis_schema_result(b"{not json", "p").passed


def test_ad_contrast():
    ok = ad_contrast_result({"1080x1080": 7.2, "1200x628": 4.6}, "p")
    bad = ad_contrast_result({"1080x1080": 7.2, "1200x628": 3.1}, "q")
    assert ok.passed and not bad.passed and "1200x628" in bad.description and "3.10:1" in bad.description
