"""Scale-out on one machine: products per hour with one Celery worker and with two, and what
one event-log write costs on SQLite, on Postgres and on Postgres through pgbouncer.

Both parts run in one process, side by side, on servers this script starts on 127.0.0.1
(tests/cluster.py: deploy/dagster.yaml, deploy/celery.yaml, deploy/pgbouncer.ini and the
worker command, with faster daemon polls):

1. Throughput. A backfill of N new products (CPU backends, default sizes, runs of
   ADGEN_BATCH_SIZE) on 1 worker, then another N on 2 workers (`--repeat 2`: 1, 2, 2, 1).
   Products per hour counts from the first run created to the last run finished, so the
   backfill daemon's 30 s polling before the first run is left out (it is the same for both).
   Bar: 2 workers >= 1.5x 1 worker. On a 2-core machine two workers can only overlap what one
   run leaves idle (event-log and S3 round trips, daemon hand-overs, single-threaded stages).
2. Event log. E engine events written to a run through the instance, each storage in turn:
   milliseconds per event and Postgres sessions opened per event (pg_stat_database.sessions;
   dagster-postgres opens a connection for every query).

    python bench/scale_out.py [--products 24] [--batch 4] [--repeat 1] [--events 300]

The machine's load average is printed with each measurement: on a shared machine, compare
numbers taken under similar load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _util import print_table  # (importing _util puts the repo on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BAR = 1.5
BUCKET = "bench-scale-out"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def throughput(cluster, instance, store, n_workers: int, n_products: int, tag: str) -> dict:
    import dagster as dg

    from tests.cluster import add_backfill, backfill_runs, upload_products

    workers = [cluster.start_worker(i) for i in range(n_workers)]
    for w in workers:
        w.wait_ready()
    pids = upload_products(store, instance, n_products, prefix=tag, size=512)
    load_before = load()
    backfill_id = add_backfill(instance, pids)

    def finished():
        runs = backfill_runs(instance, backfill_id)
        return runs if runs and all(r.is_finished for r in runs) and _covers(runs, pids) else None

    runs = cluster.wait(f"the backfill on {n_workers} worker(s)", finished, 3600, every=1.0)
    failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    if failed:
        raise SystemExit(f"runs failed: {failed}\n{cluster.logs()}")
    records = [instance.get_run_record_by_id(r.run_id) for r in runs]
    first = min(r.create_timestamp.timestamp() for r in records)
    last = max(r.end_time for r in records)
    by_worker = {}
    for r in runs:
        w = cluster.worker_of(instance, r.run_id)
        by_worker[w.name if w else "?"] = by_worker.get(w.name if w else "?", 0) + 1
    for w in workers:
        w.stop()
    cluster.workers = [w for w in cluster.workers if w not in workers]
    seconds = last - first
    events = sum(len(instance.all_logs(r.run_id)) for r in runs)
    return {"workers": n_workers, "products": n_products, "runs": len(runs), "seconds": seconds,
            "events_per_product": events / n_products,
            "per_hour": n_products / seconds * 3600, "by_worker": by_worker, "load": f"{load_before} -> {load()}"}


def _covers(runs, pids) -> bool:
    """The backfill's runs cover every product (the daemon may still be creating runs)."""
    keys = [(r.tags.get("dagster/asset_partition_range_start"), r.tags.get("dagster/asset_partition_range_end")) for r in runs]
    covered = set()
    for start, end in keys:
        if start in pids and end in pids:
            covered |= set(pids[pids.index(start):pids.index(end) + 1])
    return covered == set(pids)


def event_cost(config: dict, home: Path, n_events: int, sessions=None) -> tuple[float, float | None]:
    """ms per engine event through the instance; Postgres sessions opened per event if `sessions` is given."""
    import yaml
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = create_run_for_test(instance, job_name="bench")
        for _ in range(10):  # warm-up: tables, connections, caches
            instance.report_engine_event("warm-up", run)
        before = sessions() if sessions else None
        t0 = time.perf_counter()
        for i in range(n_events):
            instance.report_engine_event(f"bench event {i}", run)
        ms = (time.perf_counter() - t0) * 1000 / n_events
        if sessions:
            time.sleep(1.5)  # sessions are counted as each backend's statistics reach the shared ones
        per_event = (sessions() - before) / n_events if sessions else None
    return ms, per_event


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=24)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="1: one worker then two; 2: 1, 2, 2, 1")
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    import dagster as dg

    from resources.s3_store import S3ObjectStore
    from tests.cluster import Cluster
    from tests.s3server import S3TestServer
    from tests.services import DB, USER

    print(f"{os.cpu_count()} cores, load average {load()} (1/5/15 min)")
    root = Path(tempfile.mkdtemp(prefix="adgen-bench-scale-"))
    s3 = S3TestServer().start()
    s3.client().create_bucket(Bucket=BUCKET)
    env = {"ADGEN_BATCH_SIZE": str(args.batch), "ADGEN_SENSOR__RUNNING": "false"}
    results = []
    with Cluster(root / "cluster", s3.endpoint, BUCKET, env, durable=True) as cluster:
        if not args.skip_throughput:
            cluster.start_daemon()
            store = S3ObjectStore(s3.client(), BUCKET)
            with dg.DagsterInstance.from_config(str(cluster.home)) as instance:
                cluster.wait_daemon(instance)
                order = [1, 2] if args.repeat < 2 else [1, 2, 2, 1]
                for i, n in enumerate(order):
                    r = throughput(cluster, instance, store, n, args.products, f"b{i}w{n}")
                    print(f"  {n} worker(s): {r['products']} products in {r['seconds']:.0f} s, runs per worker "
                          f"{r['by_worker']}, {r['events_per_product']:.0f} event-log entries per product, "
                          f"load {r['load']}", flush=True)
                    results.append(r)
            one = statistics.mean(r["per_hour"] for r in results if r["workers"] == 1)
            two = statistics.mean(r["per_hour"] for r in results if r["workers"] == 2)
            rows = [[f"{n} worker{'s' if n > 1 else ''}", statistics.mean(r["seconds"] for r in results if r["workers"] == n),
                     ph, ph / one] for n, ph in ((1, one), (2, two))]
            print_table(["Celery workers", "seconds for the backfill", "products / hour", "x one worker"], rows,
                        title=f"Throughput: backfills of {args.products} products, runs of {args.batch}, CPU backends "
                              f"(mean of {len(results) // 2} each)")
            print(f"\nbar: 2 workers >= {BAR}x 1 worker: {'PASS' if two / one >= BAR else 'FAIL'} ({two / one:.2f}x)")

        # Event-log cost: the same instance config with each storage.
        import yaml

        base = {k: v for k, v in yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml")
                                                 .read_text()).items() if k in ("telemetry",)}
        pg = cluster.postgres

        def pg_storage(port: int) -> dict:
            return {"storage": {"postgres": {"postgres_db": {"hostname": "127.0.0.1", "port": port, "username": USER,
                                                            "password": "", "db_name": DB,
                                                            "scheme": "postgresql+psycopg2"}}}}

        def sessions() -> int:
            return int(pg.query(f"select sessions from pg_stat_database where datname = '{DB}'")[0][0])

        print(f"\nevent log, load average {load()}", flush=True)
        rows = []
        sqlite_ms, _ = event_cost({**base, "storage": {"sqlite": {"base_dir": str(root / "sqlite")}}}, root / "ev-sqlite",
                                  args.events)
        direct_ms, direct_s = event_cost({**base, **pg_storage(pg.port)}, root / "ev-pg", args.events, sessions)
        bouncer_ms, bouncer_s = event_cost({**base, **pg_storage(cluster.pgbouncer.port)}, root / "ev-pgb", args.events,
                                           sessions)
        rows = [["SQLite (dagster dev)", sqlite_ms, "-", sqlite_ms / bouncer_ms],
                ["Postgres, direct", direct_ms, f"{direct_s:.2f}", direct_ms / bouncer_ms],
                ["Postgres via pgbouncer (transaction pooling)", bouncer_ms, f"{bouncer_s:.2f}", 1.0]]
        print_table(["event log storage", "ms per event", "Postgres sessions per event", "x pgbouncer"], rows,
                    title=f"Event log: {args.events} engine events through the instance (fsync on), load {load()}")
    s3.stop()


if __name__ == "__main__":
    sys.exit(main())
