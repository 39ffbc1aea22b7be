"""What the store sensors share: the job they launch, their settings and status, one way to
declare them (`store_sensor`), store and partition helpers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def default_status(settings: SensorSettings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.running else dg.DefaultSensorStatus.STOPPED


@dataclass(frozen=True)
class StoreSensor:
    """A sensor of `adgen_pipeline` that watches the store: what each sensor module declares."""

    name: str
    evaluate: Evaluate
    interval_field: str  # the SensorSettings field with its interval
    description: str


def store_sensor(spec: StoreSensor, settings: SensorSettings) -> dg.SensorDefinition:
    """The sensor whose tick is `spec.evaluate(context, store, settings)`.

    The evaluation takes a plain `ObjectStore`, so `make demo` and the benchmarks call it
    without the resource; the sensor itself only unwraps the `store` resource. `settings`
    (read when the code location loads) give its interval and default status; each tick
    reads the settings in force then.
    """

    @dg.sensor(name=spec.name, job_name=JOB, minimum_interval_seconds=getattr(settings, spec.interval_field),
               default_status=default_status(settings), description=spec.description)
    def _sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
        return spec.evaluate(context, store.get_store(), sensor_settings())

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
