"""What both sensors share: the job they launch, their settings and status, store and partition helpers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import SensorSettings, get_settings
from resources.object_store import ObjectStore

JOB = "adgen_pipeline"
PARTITIONS = products_partitions.name


def _settings() -> SensorSettings:
    return get_settings().sensor


def _status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if _settings().running else dg.DefaultSensorStatus.STOPPED


def _read_json(store: ObjectStore, key: str) -> Optional[dict]:
    """A JSON object the pipeline wrote itself (records, reports); None when absent or not one."""
    raw = store.get_or_none(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _parallel(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """`fn` over `items` in order; store calls are I/O bound (S3 round trips)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def _known_partitions(context: dg.SensorEvaluationContext) -> set[str]:
    return set(context.instance.get_dynamic_partitions(PARTITIONS))


def _partition_requests(context, pids: Iterable[str]) -> list:
    known = _known_partitions(context)
    new = list(dict.fromkeys(p for p in pids if p not in known))
    return [dg.AddDynamicPartitionsRequest(PARTITIONS, new)] if new else []


def _json_cursor(raw: Optional[str]) -> dict:
    try:
        cur = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        cur = {}
    return cur if isinstance(cur, dict) else {}
