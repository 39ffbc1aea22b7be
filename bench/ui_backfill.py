"""A backfill launched the way the UI launches it, against `adgen run` on the same products.

N distinct 1024-px photos (default 20), in one run of this script:
1. `adgen run` on them (a new process, all stages, all files written): the baseline;
2. `dg dev` (webserver + daemon, the shipped dagster.yaml, sensors stopped) with the same
   photos in the store's uploads/, registered and added as partitions; then the UI's
   mutation `launchPartitionBackfill` on the 8 assets and those partitions. The time is
   from the mutation to the last of the backfill's runs succeeding; every file `adgen run`
   wrote must be in the store with the same bytes.

    python bench/ui_backfill.py [--products 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _dagster_dev import ASSETS, DagsterDev, adgen_run, load_text, same_outputs, write_photos
from _util import print_table

BAR = 1.3

ADD_PARTITION = """mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "products", partitionKey: $key) {
    __typename ... on PythonError { message } } }"""
LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=20)
    args = parser.parse_args()
    from resources.object_store import LocalObjectStore
    from resources.products import register_upload

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos", args.products)
        load_before = load_text()
        baseline = adgen_run(tmp / "photos", tmp / "adgen_out")

        with DagsterDev(tmp / "dagster", env={"ADGEN_SENSOR__RUNNING": "false"}) as dev:
            store = LocalObjectStore(dev.store_root)
            pids = []
            for p in photos:
                store.put(f"uploads/{p.name}", p.read_bytes())
                pids.append(register_upload(store, f"uploads/{p.name}").product_id)
                added = dev.gql(ADD_PARTITION, repo=dev.location, key=pids[-1])["addDynamicPartition"]
                assert added["__typename"] == "AddDynamicPartitionSuccess", added
            t0 = time.time()
            launched = dev.gql(LAUNCH, params={"partitionNames": pids, "assetSelection": [{"path": [a]} for a in ASSETS],
                                               "fromFailure": False})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched

            def done():
                runs = dev.runs("dagster/backfill", launched["backfillId"])
                if any(r["status"] in ("FAILURE", "CANCELED") for r in runs):
                    raise SystemExit(f"a backfill run failed: {runs}")
                covered = sum(len(pids[pids.index(t["start"]):pids.index(t["end"]) + 1]) for t in (
                    {"start": tg["dagster/asset_partition_range_start"], "end": tg["dagster/asset_partition_range_end"]}
                    for tg in ({x["key"]: x["value"] for x in r["tags"]} for r in runs)))
                return runs if covered == len(pids) and all(r["status"] == "SUCCESS" for r in runs) else None

            runs = dev.wait("the backfill's runs", done, 3600, every=0.5)
            wall = max(r["endTime"] for r in runs) - t0
            first_start = min(r["startTime"] for r in runs) - t0
            files = same_outputs(tmp / "adgen_out", dev.store_root / "products")

    n = len(photos)
    rows = [
        ["adgen run (new process, all files written)", baseline, baseline / n, 1.0],
        [f"UI backfill, {len(runs)} runs (launch -> last run succeeded)", wall, wall / n, wall / baseline],
    ]
    print_table(["path", "wall s", "s / product", "ratio"], rows,
                title=f"{n} products at 1024 px; before: {load_before}; after: {load_text()}")
    print(f"\nfirst run started {first_start:.1f} s after the launch (the backfill daemon wakes every 30 s); "
          f"runs: " + ", ".join(f"{r['endTime'] - r['startTime']:.1f} s" for r in runs))
    print(f"{files} files identical to adgen run's. Backfill / adgen run = {wall / baseline:.2f} "
          f"(bar <= {BAR}: {'PASS' if wall / baseline <= BAR else 'FAIL'})")


if __name__ == "__main__":
    main()
