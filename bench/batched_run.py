"""Dagster's overhead per product inside a batched run, against the bare core pipeline.

Ten products (bundled samples plus mirrored copies), cache off, three ways:
- bare core: the assets' own stage functions chained in memory and the same output
  files written to a local folder, as `adgen run` does (no Dagster at all);
- one batched Dagster run over all ten products (a partition range, as a backfill with
  `ADGEN_BATCH_SIZE=10` launches it) on an in-memory instance: Dagster's own work;
- the same on a SQLite instance (what `dagster dev` uses): adds the event log's disk writes.

    python bench/batched_run.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _util import print_table, ten_uploads  # (importing _util puts the repo on sys.path)
from adgen_dagster.definitions import location_resources

BAR = 1.20


def bare_core(uploads, root: Path) -> float:
    from adgen_dagster.cli.run import Job, run_one
    from adgen_dagster.settings import get_settings
    from adgen_dagster.stage_runner import chain_for
    from adgen_dagster.encoding import encode_files
    from resources.object_store import LocalObjectStore
    from resources.products import product_key

    store = LocalObjectStore(root)
    chain = chain_for(get_settings())
    src = root / "src"
    src.mkdir(parents=True)
    t0 = time.perf_counter()
    for name, data in uploads:
        path = src / name
        path.write_bytes(data)
        res = run_one(Job(name, name, path), chain, None, lambda i, s: None, get_settings().decode.max_bytes)
        for fname, blob in encode_files(res.files).items():
            if fname not in ("upload", "sidecar"):
                store.put(product_key(res.pid, fname), blob)
    return time.perf_counter() - t0


def dagster_batched(uploads, root: Path, instance) -> float:
    import dagster as dg

    from assets_defs import PIPELINE_ASSETS
    from resources.products import register_upload
    from resources.store_resource import StoreResource

    resource = StoreResource(kind="local", root=str(root), cache=False)
    store = resource.get_store()
    pids = []
    for name, data in uploads:
        store.put(f"uploads/{name}", data)
        pids.append(register_upload(store, f"uploads/{name}").product_id)
    instance.add_dynamic_partitions("products", pids)
    t0 = time.perf_counter()
    result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(resource), instance=instance,
                            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                            tags={"dagster/asset_partition_range_start": pids[0],
                                  "dagster/asset_partition_range_end": pids[-1]})
    wall = time.perf_counter() - t0
    assert result.success and len({e.partition for e in result.get_asset_materialization_events()}) == len(pids)
    return wall


def main() -> None:
    import dagster as dg

    uploads = ten_uploads()
    n = len(uploads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bare_core(uploads[:1], tmp / "warm")  # imports, fonts
        core = bare_core(uploads, tmp / "core")
        eph = dagster_batched(uploads, tmp / "eph", dg.DagsterInstance.ephemeral())
        with dg.instance_for_test() as inst:
            sql = dagster_batched(uploads, tmp / "sql", inst)
    rows = [
        ["bare core (stages + file writes, no Dagster)", core, core / n * 1000, 1.0],
        ["one batched Dagster run, in-memory instance", eph, eph / n * 1000, eph / core],
        ["one batched Dagster run, SQLite instance", sql, sql / n * 1000, sql / core],
    ]
    print_table(["path", "wall s", "ms / product", "ratio to bare core"], rows,
                title=f"Batched run, {n} products, cache off, 1024 px samples")
    print(f"\nDagster's overhead per product: {eph / core - 1:+.0%} in memory (bar <= +{BAR - 1:.0%}: "
          f"{'PASS' if eph / core <= BAR else 'FAIL'}), {sql / core - 1:+.0%} with the SQLite event log")


if __name__ == "__main__":
    main()
