"""The upload sensor's tick with many known uploads: time and memory, local store and S3.

For each store (the local store on disk; moto's S3-protocol server on 127.0.0.1) and each
size (10,000 and 100,000 uploads by default):
- the uploads are written, and the state the sensor leaves after it has requested them all
  (each product's upload record, its partition, the sensor's memory of their versions) is
  set up the way the sensor writes it (its own record and memory functions), without one
  disk sync per record, which would make the set-up, not the tick, the subject;
- tick 1: nothing changed (what every tick is, most of the time);
- tick 2: 10 uploads replaced and 10 added: only those 20 are looked at;
each tick timed (wall, and the unchanged tick's CPU seconds: on a shared machine the steadier
measure; that tick is one thread) and its peak Python memory measured in a second, traced,
evaluation. No tick may request a run for an unchanged upload.

Then, on the same uploads and instance, the unchanged tick of the code at `--baseline-rev`
(`git archive` of that revision) and of this checkout, each in its own process (what a code
server is: the first tick decodes the memory and fills the caches, the next ones are timed),
alternately, `--rounds` times: best wall and CPU seconds of each, the peak Python memory of
one traced tick (tracemalloc: what the tick allocates) and the process's peak resident memory,
and their ratios.

    python bench/sensor_tick.py [--sizes 10000 100000] [--stores local s3] [--baseline-rev 3d5dc61] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource as rlimits
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _util import REPO, print_table  # (importing _util puts the repo on sys.path)

BAR_S = 2.0
PHOTO = b"\xff\xd8\xff\xe0" + b"x" * 200  # the sensor never decodes: any non-empty .jpg is a candidate


def seed(store, instance, n: int, workers: int) -> None:
    """n uploads, and what the sensor leaves once it has requested them all."""
    from adgen_dagster.sensors import upload_memory
    from adgen_dagster.product_ids import product_id_for
    from adgen_dagster.encoding import encode_json
    from resources.products import product_key

    keys = [f"uploads/item-{i:06d}.jpg" for i in range(n)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda k: store.put(k, PHOTO), keys))
        infos = dict(zip(keys, pool.map(store.info, keys)))
    pids = [product_id_for(k[len("uploads/"):]) for k in keys]

    def record(i: int) -> None:
        store.put(product_key(pids[i], "upload.json"), encode_json({"upload": keys[i], "version": infos[keys[i]].version}))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(record, range(n)))
    instance.add_dynamic_partitions("products", pids)
    memory = {k: f"{infos[k].version}:-" for k in keys}
    upload_memory.commit(instance, upload_memory.save(instance, 0, memory))


def tick(instance, resource, cursor=None):
    import dagster as dg

    from adgen_dagster.sensors import upload_sensor

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resource}) as ctx:
        return upload_sensor(ctx)


def open_resource(spec: dict):
    from resources.store_resource import StoreResource

    if spec["kind"] == "local":
        return StoreResource(root=spec["root"])
    from dagster_aws.s3 import S3Resource

    from tests.s3server import CREDS

    return StoreResource(kind="s3", bucket=spec["bucket"], s3=S3Resource(endpoint_url=spec["endpoint"], max_attempts=2, **CREDS))


def worker(spec: dict) -> None:
    """One code server's ticks over the seeded uploads, with the code under spec["code"]; prints JSON."""
    sys.path.insert(0, spec["code"])
    import logging

    import dagster as dg

    logging.disable(logging.INFO)  # the tick's summary line: the same on both sides, and not what is timed
    instance = dg.DagsterInstance.local_temp(spec["home"])
    resource = open_resource(spec["store"])
    tick(instance, resource)  # the first tick after a start: decodes the memory, fills what the code keeps
    walls, cpus = [], []
    for _ in range(spec["ticks"]):
        t0, c0 = time.perf_counter(), time.process_time()
        result = tick(instance, resource)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert result.run_requests == [], "an unchanged upload was requested"
    tracemalloc.start()
    tick(instance, resource)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss = rlimits.getrusage(rlimits.RUSAGE_SELF).ru_maxrss / 2**10
    print(json.dumps({"wall": min(walls), "cpu": min(cpus), "peak_mb": peak, "rss_mb": rss}))


def checkout(rev: str, into: Path) -> Path:
    """The tree of `rev`, unpacked (not a worktree: nothing of git's state changes)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def side_by_side(label: str, n: int, spec: dict, baseline: Path, rounds: int, rows: list) -> None:
    """The unchanged tick, `baseline` and this checkout alternately, each in a fresh process."""
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for side, code in (("before", baseline), ("after", REPO)):
            out = subprocess.run([sys.executable, __file__, "--worker", json.dumps({**spec, "code": str(code), "ticks": 3})],
                                 capture_output=True, text=True, check=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            old = best.get(side)
            best[side] = got if old is None else {k: min(old[k], got[k]) for k in got}
    b, a = best["before"], best["after"]
    rows.append([label, f"{n:,}", b["wall"], a["wall"], f"{b['wall'] / a['wall']:.2f}x", b["cpu"], a["cpu"], f"{b['cpu'] / a['cpu']:.2f}x",
                 f"{b['peak_mb']:.1f} / {a['peak_mb']:.1f}", f"{b['rss_mb']:.0f} / {a['rss_mb']:.0f}",
                 "PASS" if label != "local" or a["wall"] <= BAR_S else "FAIL"])
    print(f"{label} {n:,}: unchanged tick before {b['wall']:.2f} s ({b['cpu']:.2f} CPU s), after {a['wall']:.2f} s "
          f"({a['cpu']:.2f} CPU s)", flush=True)


def measure(label: str, spec: dict, instance, n: int, rows: list, ab_rows: list, args) -> None:
    resource = open_resource(spec["store"])
    store = resource.get_store()
    t0 = time.perf_counter()
    seed(store, instance, n, workers=16 if label == "s3" else 4)
    setup = time.perf_counter() - t0
    if args.baseline is not None:
        side_by_side(label, n, spec, args.baseline, args.rounds, ab_rows)

    t0 = time.perf_counter()
    tick(instance, resource)  # the code server's first tick after a start also decodes the memory
    t_cold = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    quiet = tick(instance, resource)
    t_quiet, c_quiet = time.perf_counter() - t0, time.process_time() - c0
    assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == [], "an unchanged upload was requested"
    tracemalloc.start()
    tick(instance, resource)
    mem_quiet = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    for i in range(0, 100, 10):  # 10 re-uploads, 10 new photos
        store.put(f"uploads/item-{i:06d}.jpg", PHOTO + b"changed")
    for i in range(10):
        store.put(f"uploads/new-{i:03d}.jpg", PHOTO)
    t0 = time.perf_counter()
    changed = [tick(instance, resource, quiet.cursor)]
    while json.loads(changed[-1].cursor)["start_after"] is not None:  # a listing longer than one tick's pages
        changed.append(tick(instance, resource, changed[-1].cursor))
    t_changed = (time.perf_counter() - t0) / len(changed)
    requests = [r for c in changed for r in c.run_requests]
    products = sum(int(r.tags.get("adgen/products", "1")) for r in requests)
    assert products == 20, products
    again = tick(instance, resource, changed[-1].cursor)
    assert again.run_requests == []
    rows.append([label, f"{n:,}", setup, t_cold, t_quiet, c_quiet, mem_quiet, t_changed, f"{len(requests)} runs / {products} in {len(changed)} tick(s)",
                 "PASS" if label != "local" or t_quiet <= BAR_S else "FAIL"])
    print(f"{label} {n:,}: quiet tick {t_quiet:.2f} s ({c_quiet:.2f} CPU s), {mem_quiet:.0f} MB peak; after 20 changes {t_changed:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["local", "s3"])
    parser.add_argument("--baseline-rev", default="3d5dc61", help="the code to compare with (before issue 13's sensor "
                        "work); 'none' to skip the comparison")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side in the comparison (best kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    import dagster as dg

    rows: list = []
    ab_rows: list = []
    server = None
    with tempfile.TemporaryDirectory() as scratch:
        args.baseline = None if args.baseline_rev == "none" else checkout(args.baseline_rev, Path(scratch) / "baseline")
        try:
            for label in args.stores:
                for n in args.sizes:
                    with tempfile.TemporaryDirectory() as tmp:
                        if label == "local":
                            store = {"kind": "local", "root": str(Path(tmp) / "store")}
                        else:
                            if server is None:
                                from tests.s3server import S3TestServer

                                server = S3TestServer().start()
                            bucket = f"sensor-bench-{n}-{int(time.time())}"
                            server.client().create_bucket(Bucket=bucket)
                            store = {"kind": "s3", "bucket": bucket, "endpoint": server.endpoint}
                        spec = {"store": store, "home": str(Path(tmp) / "home")}
                        Path(spec["home"]).mkdir()
                        instance = dg.DagsterInstance.local_temp(spec["home"])
                        try:
                            measure(label, spec, instance, n, rows, ab_rows, args)
                        finally:
                            instance.dispose()
        finally:
            if server is not None:
                server.stop()
    one, five, _ = os.getloadavg()
    print_table(["store", "uploads", "set-up s", "first tick s", "unchanged tick s", "its CPU s", "peak MB", "tick after 20 changes s (mean)",
                 "requested", f"local <= {BAR_S} s"], rows,
                title=f"upload sensor tick, all uploads already requested; {os.cpu_count()} CPUs, load {one:.1f} / {five:.1f}")
    if ab_rows:
        print_table(["store", "uploads", "before s", "after s", "ratio", "before CPU s", "after CPU s", "ratio",
                     "tick peak MB before / after", "process peak RSS MB before / after", f"local after <= {BAR_S} s"], ab_rows,
                    title=f"unchanged tick, {args.baseline_rev} (before) and this checkout (after), best of {args.rounds} "
                          f"processes each, alternately")
    print("\nsettings:", json.dumps({k: v for k, v in __import__("adgen_dagster.settings", fromlist=["x"]).get_settings()
                                    .sensor.model_dump().items() if k in ("page_size", "pages_per_tick", "tick_seconds")}))


if __name__ == "__main__":
    main()
