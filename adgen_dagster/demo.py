"""`make demo`: the whole pipeline on the bundled sample products, on the local store.

It does what an operator would do by hand: drop the sample photos (and their details
sidecars) into the store's `uploads/`, register each as a product partition, and run
the `adgen_pipeline` job for each product on a persistent Dagster instance, so the
runs and materializations are there to browse afterwards with `make ui`.
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


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # `make demo` copies the repo's; keep a bare run quiet too
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    import dagster as dg

    from adgen_dagster.definitions import defs
    from adgen_dagster.partitions import products_partitions
    from resources.products import register_upload
    from resources.store_resource import StoreResource

    store = StoreResource().get_store()
    instance = dg.DagsterInstance.get()
    records = [register_upload(store, key) for key in upload_samples(store)]
    pids = [r.product_id for r in records]
    instance.add_dynamic_partitions(products_partitions.name, [p for p in pids if not instance.has_dynamic_partition(products_partitions.name, p)])
    job = defs.resolve_job_def("adgen_pipeline")

    print(f"adgen demo: {len(pids)} sample products, store {store.uri('products')}, Dagster home {os.environ['DAGSTER_HOME']}")
    failed = 0
    rows = []
    for rec in records:
        t0 = time.perf_counter()
        result = job.execute_in_process(
            partition_key=rec.product_id,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # the table below says it all
        )
        secs = time.perf_counter() - t0
        ok = result.success
        failed += not ok
        status = "ok" if ok else "FAILED: " + "; ".join(
            e.step_failure_data.error.message.strip().splitlines()[0]
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
        )
        rows.append((rec.product_id, rec.file_name, f"{secs:.1f}s", status))
        print(f"  {rec.product_id:<28} {rec.file_name:<30} {secs:5.1f}s  {status}", flush=True)

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
