"""The sensors of the code location, one module each, and what they share.

- `uploads`: photos under `uploads/` become product partitions and batched runs
  (per object: `upload_checks`; which runs: `upload_batches`; what was already requested:
  `upload_memory`);
- `catalogs`: catalog manifests under `catalogs/` set product details and request runs
  (their rows: `catalog_rows`);
- `split_batches`: a batch in which some products failed is re-run one product per run.

`base` holds what they share (the job, settings, `store_sensor`), `told` what a sensor
has already reported.

Nothing is built at import: `build_sensors(settings)` builds them when the code location
loads, so their intervals and default status are those of the settings in force then.
`SENSORS` (and each sensor by name) is the same for this process's settings, built on
first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import dagster as dg

from adgen_dagster.sensors.base import store_sensor
from adgen_dagster.sensors.catalogs import CATALOG_SENSOR
from adgen_dagster.sensors.split_batches import SPLIT_TAG, build_split_sensor, split_requests
from adgen_dagster.sensors.uploads import UPLOAD_SENSOR, evaluate_uploads
from adgen_dagster.settings import AdgenSettings, get_settings


def build_sensors(settings: Optional[AdgenSettings] = None) -> list[dg.SensorDefinition]:
    """The upload, catalog and split-batches sensors, with intervals and status from `settings`."""
    s = (settings or get_settings()).sensor
    return [store_sensor(UPLOAD_SENSOR, s), store_sensor(CATALOG_SENSOR, s), build_split_sensor(s)]


@lru_cache(maxsize=1)
def _default_sensors() -> list[dg.SensorDefinition]:
    return build_sensors()


def __getattr__(name: str):
    """`SENSORS`, `upload_sensor`, `catalog_sensor`, `split_failed_batches`: built on first use."""
    if name == "SENSORS":
        return _default_sensors()
    if name in ("upload_sensor", "catalog_sensor", "split_failed_batches"):
        return next(s for s in _default_sensors() if s.name == name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SENSORS", "SPLIT_TAG", "build_sensors", "catalog_sensor", "evaluate_uploads", "split_failed_batches",
           "split_requests", "upload_sensor"]
