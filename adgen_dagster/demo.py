"""`make demo`: the whole pipeline on the bundled sample products, on the local store.

It does what an operator would do by hand: drop the sample photos (and their details
sidecars) into the store's `uploads/`; then the upload sensor's own evaluation
(`sensors.evaluate_uploads`) registers them, adds their partitions and says which runs to
launch (the same batches and run keys as `make ui`'s sensor would), and the demo runs them
here with the `adgen_pipeline` job on the persistent Dagster instance, tagged as that
sensor's runs, and commits the sensor's memory. So the runs are there to browse with
`make ui`, and its sensor, finding nothing new, starts nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import resources as importlib_resources
from pathlib import Path

SAMPLES = importlib_resources.files("adgen_dagster") / "samples"


def sample_catalog() -> list[dict]:
    return json.loads((SAMPLES / "catalog.json").read_text(encoding="utf-8"))


def upload_samples(store) -> list[str]:
    """Put the sample photos and sidecars under uploads/ (unchanged ones are left alone)."""
    keys = []
    for row in sample_catalog():
        key = f"uploads/{row['upload']}"
        data = (SAMPLES / row["photo"]).read_bytes()
        if store.get_or_none(key) != data:
            store.put(key, data, "image/jpeg")
        if row.get("details"):
            sidecar = json.dumps(row["details"], ensure_ascii=False, indent=2).encode("utf-8")
            if store.get_or_none(key + ".json") != sidecar:
                store.put(key + ".json", sidecar, "application/json")
        keys.append(key)
    return keys


def upload_for_sample(row: dict) -> str:
    from adgen_dagster.product_ids import product_id_for

    return product_id_for(row["upload"])


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # `make demo` copies the repo's; keep a bare run quiet too
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

    from adgen_dagster.sensors import upload_memory
    from adgen_dagster.definitions import defs as load_defs
    from adgen_dagster.sensors import evaluate_uploads, upload_sensor
    from adgen_dagster.settings import get_settings
    from resources.store_resource import StoreResource

    resource = StoreResource()
    store = resource.get_store()
    instance = dg.DagsterInstance.get()
    upload_samples(store)
    with dg.build_sensor_context(instance=instance, sensor_name=upload_sensor.name, resources={"store": resource}) as ctx:
        tick = evaluate_uploads(ctx, store, get_settings().sensor)  # what `make ui`'s sensor would ask for
    for req in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    pids = [upload_for_sample(row) for row in sample_catalog()]
    job = load_defs().resolve_job_def("adgen_pipeline")

    print(f"adgen demo: {len(pids)} sample products, store {store.uri('products')}, Dagster home {os.environ['DAGSTER_HOME']}")
    if not tick.run_requests:
        print("  all sample products are up to date: nothing new or changed since the last run")
    failed = 0
    for req in tick.run_requests:
        tags = {**req.tags, SENSOR_NAME_TAG: upload_sensor.name, RUN_KEY_TAG: req.run_key}
        label = req.partition_key or f"{req.tags[ASSET_PARTITION_RANGE_START_TAG]} .. {req.tags[ASSET_PARTITION_RANGE_END_TAG]}"
        t0 = time.perf_counter()
        result = job.execute_in_process(
            partition_key=req.partition_key,
            instance=instance,
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # the lines below say it all
        )
        secs = time.perf_counter() - t0
        failed += not result.success
        status = "ok" if result.success else "FAILED: " + "; ".join(
            e.step_failure_data.error.message.strip().splitlines()[0]
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
        )
        print(f"  run {result.run_id[:8]}: {label} ({req.tags.get('adgen/products', '1')} products) {secs:5.1f}s  {status}", flush=True)
    upload_memory.commit(instance, json.loads(tick.cursor)["memory"])  # these runs were launched

    root = store.uri("products")  # a folder path, or s3://bucket/prefix/products
    print()
    print(f"Outputs per product: {root}/<product>/")
    print("  product_image.png  nobg_image.png  mask.png  background.png  composite.png  retouched.png  analysis.json")
    print("  ads/1080x1080.png|html  ads/1080x1350.png|html  ads/1080x1920.png|html  ads/1200x628.png|html")
    if pids:
        print(f"For example: {root}/{pids[0]}/ads/1080x1080.png")
    print("Browse the runs and assets: make ui  (then open http://127.0.0.1:3000)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
