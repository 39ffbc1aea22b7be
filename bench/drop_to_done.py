"""Photos dropped into uploads/ with the webserver and daemon running, against `adgen run`.

N distinct 1024-px photos (default 60), in one run of this script:
1. `adgen run` on them (a new process, all stages, all files written): the baseline;
2. `dg dev` (webserver + daemon, the shipped dagster.yaml, the sensors running as shipped),
   waited on until the upload sensor has ticked once; then the photos are dropped into the
   store's uploads/ (each written atomically, as `adgen upload` does). The time is from the
   drop to the last of the sensor's runs succeeding, once every photo's product has a
   successful run; every file `adgen run` wrote must be in the store with the same bytes.
The sensor's runs are listed: how many, how many products each, and when each was created,
dequeued, had its process up, ran its steps and ended (`_run_timeline.py`, from the instance);
CPU seconds are `adgen run`'s and dg dev's whole process tree's from the drop on.

`--also-pool-limit N` drops the same photos again into a fresh `dg dev` whose dagster.yaml
has the `gpu` pool limit set to N (an experiment: with the CPU backends, limit 1 makes two
runs take turns at segmentation, background and analysis). `--also-env NAME=VALUE` drops
them again into a fresh `dg dev` with that environment variable set, e.g.
`ADGEN_RUN_WORKERS=1`: each step's products one at a time, as before the product threads.

    python bench/drop_to_done.py [--products 60] [--also-pool-limit 2] [--also-env ADGEN_RUN_WORKERS=1]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from _dagster_dev import DagsterDev, adgen_run, load_text, same_outputs, write_photos
from _run_timeline import print_timeline, timeline
from _util import print_table

BAR = 1.3
TICKS = """query($sel: InstigationSelector!) { instigationStateOrError(instigationSelector: $sel) {
  ... on InstigationState { ticks(limit: 1) { status timestamp } } } }"""


KEYS = """{ assetNodeOrError(assetKey: {path: ["product_image"]}) { ... on AssetNode { partitionKeys } } }"""


def children_cpu() -> float:
    """User + system CPU seconds of the child processes waited for so far (and theirs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants, living and reaped (Linux /proc)."""
    ticks, total, todo = os.sysconf("SC_CLK_TCK"), 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


def partition_keys(dev: DagsterDev) -> list[str]:
    """The products in partition order (what a range run's start and end refer to)."""
    return dev.gql(KEYS)["assetNodeOrError"]["partitionKeys"]


def products_of(run: dict, order: list[str]) -> list[str]:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start in order and end in order:
        return order[order.index(start):order.index(end) + 1]
    return []


def drop(tmp: Path, photos: list[Path], wanted: set[str], adgen_out: Path, pool_limit: int | None,
         env: dict[str, str] | None = None) -> dict:
    """`dg dev` with the shipped dagster.yaml (or its `gpu` pool limit changed, or `env` set), the photos
    dropped, until every product has a successful sensor run; what happened, from the drop on."""
    from resources.object_store import LocalObjectStore

    with DagsterDev(tmp, pool_limit=pool_limit, env=env) as dev:
        sel = {**dev.location, "name": "upload_sensor"}
        dev.wait("the upload sensor's first tick",
                 lambda: dev.gql(TICKS, sel=sel)["instigationStateOrError"].get("ticks"), 180)
        store = LocalObjectStore(dev.store_root)
        cpu_before_drop = tree_cpu(dev.proc.pid)
        t0 = time.time()
        for p in photos:
            store.put(f"uploads/{p.name}", p.read_bytes())

        def done():
            runs = [r for r in dev.runs() if any(t["key"] == "dagster/sensor_name" for t in r["tags"])]
            failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
            if failed:
                raise SystemExit(f"{len(failed)} sensor run(s) failed: {failed[:3]}")
            keys = partition_keys(dev)
            ok = {pid for r in runs if r["status"] == "SUCCESS" for pid in products_of(r, keys)}
            return runs if wanted <= ok and all(r["status"] == "SUCCESS" for r in runs) else None

        runs = dev.wait("the sensor's runs", done, 7200, every=1.0)
        cpu = tree_cpu(dev.proc.pid) - cpu_before_drop  # webserver, daemon, code server, runs
        out = {"wall": max(r["endTime"] for r in runs) - t0, "cpu": cpu, "runs": len(runs),
               "first_start": min(r["startTime"] for r in runs) - t0,
               "sizes": sorted(len(products_of(r, partition_keys(dev))) for r in runs),
               "files": same_outputs(adgen_out, dev.store_root / "products")}
    out["timeline"] = timeline(dev.home, t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--also-pool-limit", type=int, metavar="N",
                        help="then drop the same photos again with the gpu pool limit set to N (an experiment)")
    parser.add_argument("--also-env", metavar="NAME=VALUE", action="append", default=[],
                        help="then drop the same photos again with this environment variable set (repeatable: each alone)")
    args = parser.parse_args()
    from adgen_dagster.product_ids import product_id_for

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos", args.products)
        load_before = load_text()
        cpu0 = children_cpu()
        baseline = adgen_run(tmp / "photos", tmp / "adgen_out")
        cpu_baseline = children_cpu() - cpu0
        wanted = {product_id_for(p.name) for p in photos}
        tries = [("shipped dagster.yaml", drop(tmp / "dagster", photos, wanted, tmp / "adgen_out", None))]
        if args.also_pool_limit:
            tries.append((f"gpu pool limit {args.also_pool_limit}",
                          drop(tmp / "dagster2", photos, wanted, tmp / "adgen_out", args.also_pool_limit)))
        for i, assignment in enumerate(args.also_env):
            name, _, value = assignment.partition("=")
            tries.append((assignment, drop(tmp / f"dagster_env{i}", photos, wanted, tmp / "adgen_out", None,
                                           {name: value})))

    n = len(photos)
    rows = [["adgen run (new process, all files written)", baseline, baseline / n, cpu_baseline, 1.0]]
    rows += [[f"dropped -> last sensor run succeeded ({label}, {t['runs']} runs)", t["wall"], t["wall"] / n, t["cpu"],
              t["wall"] / baseline] for label, t in tries]
    print_table(["path", "wall s", "s / product", "CPU s (process tree)", "ratio"], rows,
                title=f"{n} products at 1024 px; before: {load_before}; after: {load_text()}")
    for label, t in tries:
        print(f"\n{label}:")
        print_timeline(t["timeline"])
        print(f"first run started {t['first_start']:.1f} s after the drop; products per run: {t['sizes']}; "
              f"{t['files']} files identical to adgen run's")
    wall = tries[0][1]["wall"]
    print(f"\nDrop-to-done / adgen run = {wall / baseline:.2f} (bar <= {BAR}: {'PASS' if wall / baseline <= BAR else 'FAIL'})")


if __name__ == "__main__":
    main()
