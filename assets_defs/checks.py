"""Asset checks as pure functions over stored outputs, so tests can feed them bad data.

Each returns a `dagster.AssetCheckResult`; the assets attach them to their
materializations (one result per run; for a batch, the first failing product).
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
from PIL import Image
from pydantic import ValidationError

from adgen_dagster.imaging.analysis_model import Analysis

MASK_COVERAGE = "mask_coverage"
CUTOUT_QUALITY = "cutout_quality"
ANALYSIS_SCHEMA = "analysis_schema"
AD_CONTRAST = "ad_text_contrast"

MIN_COVERAGE, MAX_COVERAGE = 0.005, 0.99
MIN_CONTRAST = 4.5


def mask_coverage(mask: Image.Image) -> float:
    """Mean alpha: the fraction of the image the product covers (soft edges count partly)."""
    return float(np.asarray(mask.convert("L"), dtype=np.float32).mean() / 255.0)


def mask_coverage_result(coverage: float, pid: str) -> dg.AssetCheckResult:
    ok = MIN_COVERAGE <= coverage <= MAX_COVERAGE
    return dg.AssetCheckResult(
        check_name=MASK_COVERAGE,
        passed=ok,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if ok else f"product {pid}: mask covers {coverage:.2%} of the image, outside {MIN_COVERAGE:.1%}-{MAX_COVERAGE:.0%}",
        metadata={"product": pid, "coverage": round(coverage, 5)},
    )


def cutout_quality_result(reasons: dict[str, str]) -> dg.AssetCheckResult:
    """The quality gate's verdict (imaging/segment_gate.py): {pid: reason, "" when trusted}.
    One result per run, failing with every rejected product's reason."""
    bad = {pid: why for pid, why in reasons.items() if why}
    return dg.AssetCheckResult(
        check_name=CUTOUT_QUALITY,
        passed=not bad,
        description="; ".join(f"product {pid}: {why}" for pid, why in bad.items()) or None,
        metadata={"products": ", ".join(reasons), "rejected": ", ".join(bad)},
    )


def analysis_schema_result(raw: bytes | str | dict, pid: str) -> dg.AssetCheckResult:
    try:
        Analysis.model_validate(json.loads(raw) if isinstance(raw, (bytes, str)) else raw)
        ok, why = True, None
    except (ValidationError, json.JSONDecodeError) as exc:
        ok, why = False, f"product {pid}: analysis does not match the schema: {exc}"[:2000]
    return dg.AssetCheckResult(check_name=ANALYSIS_SCHEMA, passed=ok, description=why, metadata={"product": pid})


def ad_contrast_result(contrasts: dict[str, float], pid: str) -> dg.AssetCheckResult:
    worst_size = min(contrasts, key=contrasts.get)
    worst_value = contrasts[worst_size]
    ok = worst_value >= MIN_CONTRAST
    return dg.AssetCheckResult(
        check_name=AD_CONTRAST,
        passed=ok,
        description=None if ok else f"product {pid}: text contrast {worst_value:.2f}:1 in {worst_size} is below {MIN_CONTRAST}:1",
        metadata={"product": pid, "min_contrast": round(worst_value, 2), "worst_size": worst_size},
    )


def worst(results: list[dg.AssetCheckResult]) -> dg.AssetCheckResult:
    """A run over several products reports one result per check: the first failure, else the first pass."""
    return next((r for r in results if not r.passed), results[0])
