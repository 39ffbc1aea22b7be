"""Cache benchmark: what a repeated run costs.

"stage work" is the time spent inside the assets (cache lookups, reads, compute, writes),
summed from each materialization's timings; "wall" adds Dagster's own run bookkeeping.

For 10 sample products (the six bundled photos plus mirrored variants), materializes the
whole graph three times on one store: first (empty cache), second with nothing changed,
third with only the retouch settings changed. A fourth row repeats the second run with
the cache switched off, as the baseline of what a re-run costs without it. Prints wall
time, stages computed vs served from cache, and each run's ratio to the first.

    python bench/cache.py            # local store
    python bench/cache.py --s3       # against a local S3-protocol server (moto)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from _util import print_table, ten_uploads  # (importing _util puts the repo on sys.path)
from adgen_dagster.definitions import location_resources

BAR_SECOND = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s3", action="store_true", help="use a moto S3 server on 127.0.0.1 instead of a local folder")
    args = ap.parse_args()

    import dagster as dg

    from assets_defs import PIPELINE_ASSETS
    from resources.products import register_upload
    from resources.store_resource import StoreResource

    server = None
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        if args.s3:
            from tests.s3server import S3TestServer

            server = S3TestServer().start()
            server.client().create_bucket(Bucket="bench")
            store = StoreResource(kind="s3", bucket="bench", s3=server.resource()).get_store()
        else:
            store = StoreResource(kind="local", root=str(Path(tmp) / "store")).get_store()
        pids = []
        for name, data in ten_uploads():
            store.put(f"uploads/{name}", data)
            pids.append(register_upload(store, f"uploads/{name}").product_id)
        instance.add_dynamic_partitions("products", pids)

        def run(label: str, res: StoreResource, run_config: dict | None = None):
            """One run over all products (a partition range), as a batched backfill would."""
            counts: Counter = Counter()
            computed: Counter = Counter()
            work_ms = 0.0
            t0 = time.perf_counter()
            result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(res), instance=instance,
                                    run_config=run_config or {},
                                    tags={"dagster/asset_partition_range_start": pids[0],
                                          "dagster/asset_partition_range_end": pids[-1]})
            wall = time.perf_counter() - t0
            assert result.success, label
            for ev in result.get_asset_materialization_events():
                md = ev.step_materialization_data.materialization.metadata
                status = md["cache"].value
                counts[status] += 1
                if status != "hit":
                    computed[ev.asset_key.to_user_string()] += 1
                if ev.asset_key.to_user_string() != "mask":  # mask shares the segmentation step's timings
                    work_ms += sum(md["timings_ms"].value.values())
            return label, wall, work_ms / 1000, counts, computed

        def resource_with(cache: bool) -> StoreResource:
            if args.s3:
                return StoreResource(kind="s3", bucket="bench", s3=server.resource(), cache=cache)
            return StoreResource(kind="local", root=str(Path(tmp) / "store"), cache=cache)

        resource = resource_with(True)
        rows = [
            run("1 first (empty cache)", resource),
            run("2 nothing changed", resource),
            run("3 retouch brightness 1.05 -> 1.12", resource, {"ops": {"retouched": {"config": {"brightness": 1.12}}}}),
            run("baseline: 2 with cache off", resource_with(False)),
        ]
        if server:
            server.stop()

    first_wall, first_work = rows[0][1], rows[0][2]
    table = []
    for label, wall, work, counts, computed in rows:
        table.append([label, wall, work, work / first_work, wall / first_wall, counts.get("hit", 0),
                      counts.get("miss", 0) + counts.get("off", 0), ", ".join(sorted(computed)) or "-"])
    print_table(["run (one run, all products)", "wall s", "stage work s", "work/first", "wall/first",
                 "from cache", "computed", "recomputed assets"],
                table, title=f"Cache benchmark, {len(pids)} products, {'S3 (moto, 127.0.0.1)' if args.s3 else 'local store'}")
    second = rows[1][2] / first_work
    print(f"\nsecond run: stage work {second:.1%} of the first (bar <= {BAR_SECOND:.0%}: {'PASS' if second <= BAR_SECOND else 'FAIL'}), "
          f"wall {rows[1][1] / first_wall:.1%} (the rest is Dagster's own event log, the same with or without the cache: "
          f"compare the cache-off row); third recomputes: {', '.join(sorted(rows[2][4]))}")


if __name__ == "__main__":
    main()
