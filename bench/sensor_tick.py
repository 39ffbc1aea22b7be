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

    python bench/sensor_tick.py [--sizes 10000 100000] [--stores local s3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _util import print_table  # (importing _util puts the repo on sys.path)

BAR_S = 2.0
PHOTO = b"\xff\xd8\xff\xe0" + b"x" * 200  # the sensor never decodes: any non-empty .jpg is a candidate


def seed(store, instance, n: int, workers: int) -> None:
    """n uploads, and what the sensor leaves once it has requested them all."""
    from adgen_dagster.sensors import upload_memory
    from adgen_dagster.product_ids import product_id_for
    from resources.io import encode_json
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


def measure(label: str, resource, instance, n: int, rows: list) -> None:
    store = resource.get_store()
    t0 = time.perf_counter()
    seed(store, instance, n, workers=16 if label == "s3" else 4)
    setup = time.perf_counter() - t0

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
    args = parser.parse_args()

    import dagster as dg

    from resources.store_resource import StoreResource

    rows: list = []
    server = None
    try:
        for label in args.stores:
            for n in args.sizes:
                with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
                    if label == "local":
                        resource = StoreResource(root=str(Path(tmp) / "store"))
                    else:
                        if server is None:
                            from tests.s3server import S3TestServer

                            server = S3TestServer().start()
                        bucket = f"sensor-bench-{n}-{int(time.time())}"
                        server.client().create_bucket(Bucket=bucket)
                        resource = StoreResource(kind="s3", bucket=bucket, s3=server.resource())
                    measure(label, resource, instance, n, rows)
    finally:
        if server is not None:
            server.stop()
    one, five, _ = os.getloadavg()
    print_table(["store", "uploads", "set-up s", "first tick s", "unchanged tick s", "its CPU s", "peak MB", "tick after 20 changes s (mean)",
                 "requested", f"local <= {BAR_S} s"], rows,
                title=f"upload sensor tick, all uploads already requested; {os.cpu_count()} CPUs, load {one:.1f} / {five:.1f}")
    print("\nsettings:", json.dumps({k: v for k, v in __import__("adgen_dagster.settings", fromlist=["x"]).get_settings()
                                    .sensor.model_dump().items() if k in ("page_size", "pages_per_tick", "tick_seconds")}))


if __name__ == "__main__":
    main()
