"""Asset checks as pure functions over stored outputs, so tests can feed them bad data.

Each returns a `dagster.AssetCheckResult` for one product; `per_product_evaluations` records
them, one evaluation per product on that product's partition, so a batch with several bad
products shows each failure on its own partition in the UI (Checks tab, partition view).

Why not `AssetCheckResult` directly: in a run over a partition range (a batched backfill)
Dagster records an `AssetCheckResult` once for the whole step, with no partition. An
`AssetCheckEvaluation` carries its partition, and a step may yield as many as it likes;
the check specs are partitioned (`partitions_def=products_partitions`, a preview feature
in Dagster 1.13) so that the UI shows their status per partition.
"""

from __future__ import annotations

import json
import warnings
from typing import Iterator

import dagster as dg
import numpy as np
from PIL import Image
from pydantic import ValidationError

from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.partitions import products_partitions

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


def cutout_quality_result(reason: str, pid: str) -> dg.AssetCheckResult:
    """The quality gate's verdict on one product's cut-out (imaging/segment_gate.py): "" when trusted."""
    return dg.AssetCheckResult(
        check_name=CUTOUT_QUALITY,
        passed=not reason,
        description=f"product {pid}: {reason}" if reason else None,
        metadata={"product": pid},
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


def check_spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    """A check evaluated per product: its status is kept per partition."""
    with warnings.catch_warnings():
        # Partitioned check specs are a preview feature in Dagster 1.13 and say so on every
        # spec; per-partition check status is what we use them for, on purpose.
        warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                                category=dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, description=description, partitions_def=products_partitions)


def per_product_evaluations(context: dg.AssetExecutionContext, asset: str,
                            results: dict[str, dg.AssetCheckResult], materialized: bool = True) -> Iterator:
    """One evaluation per product, on its partition, then the check's output for the step.

    Yield this after the asset's `MaterializeResult`: each evaluation names the
    materialization of its own partition as its target, which is what makes the UI count
    it as the check result of that product's latest materialization. `materialized=False`
    is for products whose step is failing (the cut-out quality gate): their evaluations
    name no materialization (an older one is not what was judged) and the step, which is
    about to raise, gets no check output.
    """
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,  # not exported; the evaluation's own field type
    )

    key = dg.AssetKey(asset)
    check_name = None
    for pid, r in results.items():
        check_name = r.check_name
        latest = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[pid]), limit=1).records if materialized else []
        target = (AssetCheckEvaluationTargetMaterializationData(
            run_id=latest[0].run_id, storage_id=latest[0].storage_id, timestamp=latest[0].timestamp)
            if latest else None)
        yield dg.AssetCheckEvaluation(asset_key=key, check_name=r.check_name, passed=r.passed, metadata=r.metadata,
                                      severity=r.severity, description=r.description, partition=pid,
                                      target_materialization_data=target, blocking=False)
    if check_name is not None and materialized:
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(
            dg.AssetCheckKey(key, check_name)))
