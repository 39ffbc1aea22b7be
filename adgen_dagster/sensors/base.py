"""What the store sensors share: the job they launch, their settings and status, one way to
declare them (`store_sensor`), store and partition helpers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.settings import SensorSettings, get_settings
from resources.object_store import ObjectStore
from resources.store_resource import StoreResource

JOB = "adgen_pipeline"
PARTITIONS = products_partitions.name

Evaluate = Callable[[dg.SensorEvaluationContext, ObjectStore, SensorSettings], dg.SensorResult]


def sensor_settings() -> SensorSettings:
    return get_settings().sensor


def default_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if sensor_settings().running else dg.DefaultSensorStatus.STOPPED


def store_sensor(name: str, evaluate: Evaluate, interval_seconds: int, description: str) -> dg.SensorDefinition:
    """A sensor of `adgen_pipeline` whose tick is `evaluate(context, store, settings)`.

    The evaluation takes a plain `ObjectStore`, so `make demo` and the benchmarks call it
    without the resource; the sensor itself only unwraps the `store` resource.
    """

    @dg.sensor(name=name, job_name=JOB, minimum_interval_seconds=interval_seconds, default_status=default_status(),
               description=description)
    def _sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
        return evaluate(context, store.get_store(), sensor_settings())

    return _sensor


def read_json(store: ObjectStore, key: str) -> Optional[dict]:
    """A JSON object the pipeline wrote itself (records, reports); None when absent or not one."""
    raw = store.get_or_none(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def parallel(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """`fn` over `items` in order; store calls are I/O bound (S3 round trips)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def partition_requests(context, pids: Iterable[str]) -> list:
    """The add request for those of `pids` that are not partitions yet (none when all are)."""
    known = set(context.instance.get_dynamic_partitions(PARTITIONS))
    new = list(dict.fromkeys(p for p in pids if p not in known))
    return [products_partitions.build_add_request(new)] if new else []


def json_cursor(raw: Optional[str]) -> dict:
    try:
        cur = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        cur = {}
    return cur if isinstance(cur, dict) else {}
