"""The sensors of the code location, one module each, and what they share.

- `uploads`: photos under `uploads/` become product partitions and batched runs
  (per object: `upload_checks`; which runs: `upload_batches`; what was already requested:
  `upload_memory`);
- `catalogs`: catalog manifests under `catalogs/` set product details and request runs
  (their rows: `catalog_rows`);
- `split_batches`: a batch in which some products failed is re-run one product per run.

`base` holds what they share (the job, settings, `store_sensor`), `told` what a sensor
has already reported.
"""

from adgen_dagster.sensors.catalogs import catalog_sensor
from adgen_dagster.sensors.split_batches import SPLIT_TAG, split_failed_batches, split_requests
from adgen_dagster.sensors.uploads import evaluate_uploads, upload_sensor

SENSORS = [upload_sensor, catalog_sensor, split_failed_batches]

__all__ = ["SENSORS", "SPLIT_TAG", "catalog_sensor", "evaluate_uploads", "split_failed_batches", "split_requests",
           "upload_sensor"]
