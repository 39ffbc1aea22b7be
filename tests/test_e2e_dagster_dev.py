"""End to end: the real `dg dev` (webserver + daemon) driven over HTTP.

It starts `dg dev` (what `make ui` runs) on 127.0.0.1 (a free port) with a temp DAGSTER_HOME holding the
repository's dagster.yaml and a temp local store, in its own session so that it (and only
it) is stopped by process group at the end. Over GraphQL it checks the code location
loaded with the 8 assets and the nightly schedule, registers three products (photos in
uploads/, registered, partitions added through the `addDynamicPartition` mutation),
launches a backfill over them the way the UI does (`launchPartitionBackfill`) with a
batch size of 2, and waits for the daemon to run it: 2 runs, both successful, every
asset materialized for every product. Then it switches the upload sensor on, drops a new
photo into uploads/ and waits for the sensor to add its partition and for its run to
succeed, which is the path an operator uses.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from resources.object_store import LocalObjectStore
from adgen_dagster.product_ids import product_id_for
from resources.products import register_upload
from tests.conftest import REPO
from tests.imagegen import encode, product_photo

DG = Path(sys.executable).with_name("dg")
ASSETS = {"product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"}
pytestmark = pytest.mark.skipif(not DG.exists() and shutil.which("dg") is None, reason="dg CLI (dagster-dg-cli) not installed")

# Small outputs keep the runs short; nothing else differs from a default install.
FAST = {
    "ADGEN_BACKDROP__WIDTH": "256", "ADGEN_BACKDROP__HEIGHT": "256",
    "ADGEN_COMPOSITE__WIDTH": "256", "ADGEN_COMPOSITE__HEIGHT": "256",
    "ADGEN_ADS__SIZES": "400x400", "ADGEN_BATCH_SIZE": "2",
    # the sensor starts stopped so the backfill phase is alone; the test switches it on
    "ADGEN_SENSOR__RUNNING": "false", "ADGEN_SENSOR__INTERVAL_SECONDS": "5",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GraphQL:
    def __init__(self, url: str):
        self.url = url

    def __call__(self, query: str, **variables) -> dict:
        req = urllib.request.Request(self.url, data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        assert not body.get("errors"), body["errors"]
        return body["data"]


def wait_for(what: str, fn, timeout: float, proc: subprocess.Popen, log: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dg dev exited ({proc.returncode}) waiting for {what}:\n{log.read_text()[-4000:]}")
        try:
            last = fn()
            if last:
                return last
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what} (last: {last!r}):\n{log.read_text()[-4000:]}")


@pytest.fixture
def dagster_dev(tmp_path):
    home, store_root, log = tmp_path / "home", tmp_path / "store", tmp_path / "dagster_dev.log"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, **FAST, "DAGSTER_HOME": str(home), "ADGEN_STORE__ROOT": str(store_root),
           "ADGEN_STORE__KIND": "local", "PYTHONUNBUFFERED": "1"}
    cli = str(DG) if DG.exists() else shutil.which("dg")
    with open(log, "wb") as out:
        proc = subprocess.Popen([cli, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, GraphQL(f"http://127.0.0.1:{port}/graphql"), LocalObjectStore(store_root), log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: this stops dg dev and its children only
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { name repositories { name assetNodes { assetKey { path } }
      schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } } } } }"""

START_SENSOR = """mutation($sel: SensorSelector!) { startSensor(sensorSelector: $sel) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } ... on UnauthorizedError { message } } }"""

SENSOR_RUNS = """query { runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "upload_sensor"}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""

ADD_PARTITION = """mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "products", partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""

LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""

RUNS = """query($backfill: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $backfill}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""

RUN_ENGINE_EVENTS = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
  events { __typename ... on EngineEvent { message } } } } }"""

PARTITION_STATS = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode { partitionStats { numMaterialized numPartitions numFailed } } } }"""


def test_dagster_dev_backfill_and_upload_sensor_over_graphql(dagster_dev):
    proc, gql, store, log = dagster_dev
    t0 = time.monotonic()

    def loaded():
        entries = gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        loc = entries[0]["locationOrLoadError"] if entries else None
        if loc and loc["__typename"] == "PythonError":
            pytest.fail(f"code location failed to load: {loc['message']}")
        return (entries[0]["name"], loc) if loc and loc["__typename"] == "RepositoryLocation" else None

    location_name, location = wait_for("the code location", loaded, 120, proc, log)
    print(f"code location loaded after {time.monotonic() - t0:.1f} s")
    [repo] = location["repositories"]
    assert {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]} == ASSETS
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}["nightly_refresh"] == "STOPPED"
    repo_selector = {"repositoryLocationName": location_name, "repositoryName": repo["name"]}

    pids = []
    for i, colour in enumerate([(200, 60, 40), (40, 80, 200), (30, 150, 60)]):
        store.put(f"uploads/item-{i}.jpg", encode(product_photo(size=(96, 96), colour=colour, seed=i), "JPEG", quality=90))
        pids.append(register_upload(store, f"uploads/item-{i}.jpg").product_id)
        assert gql(ADD_PARTITION, repo=repo_selector, key=pids[-1])["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"

    launched = gql(LAUNCH_BACKFILL, params={
        "partitionNames": pids, "assetSelection": [{"path": [a]} for a in sorted(ASSETS)], "fromFailure": False,
    })["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished():
        runs = gql(RUNS, backfill=backfill_id)["runsOrError"]["results"]
        if any(r["status"] in ("FAILURE", "CANCELED") for r in runs):
            pytest.fail(f"a backfill run failed: {runs}\n{log.read_text()[-4000:]}")
        return runs if len(runs) == 2 and all(r["status"] == "SUCCESS" for r in runs) else None

    t1 = time.monotonic()
    runs = wait_for("the backfill's runs", finished, 420 - (t1 - t0), proc, log, every=2.0)
    print(f"backfill done {time.monotonic() - t1:.1f} s after launch")
    # batch size 2 over 3 neighbouring products: runs over [item-0..item-1] and [item-2..item-2]
    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in runs]
    ranges = sorted((t["dagster/asset_partition_range_start"], t["dagster/asset_partition_range_end"]) for t in tags)
    assert ranges == [(pids[0], pids[1]), (pids[2], pids[2])]
    for run in runs:  # the UI's backfill runs the implicit asset job: one process, no subprocess per step
        engine = [e["message"] for e in gql(RUN_ENGINE_EVENTS, runId=run["runId"])["logsForRun"]["events"]
                  if e["__typename"] == "EngineEvent"]
        assert any(m.startswith("Executing steps in process") for m in engine), engine
        assert not any("Launching subprocess" in m or "multiprocess" in m for m in engine), engine
    for asset in ASSETS:
        stats = gql(PARTITION_STATS, path=[asset])["assetNodeOrError"]["partitionStats"]
        assert stats == {"numMaterialized": 3, "numPartitions": 3, "numFailed": 0}, asset
    for pid in pids:
        assert store.exists(f"products/{pid}/ads/400x400.png") and store.exists(f"products/{pid}/ads/400x400.html")

    # The operator's path: switch the upload sensor on and drop a photo into uploads/.
    assert {x["name"]: x["sensorState"]["status"] for x in repo["sensors"]}["upload_sensor"] == "STOPPED"
    started = gql(START_SENSOR, sel={**repo_selector, "sensorName": "upload_sensor"})["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
    store.put("uploads/New Lamp.jpg", encode(product_photo(size=(96, 96), colour=(220, 180, 30), seed=9), "JPEG"))
    new_pid = product_id_for("New Lamp.jpg")

    def sensor_run_done():
        runs = gql(SENSOR_RUNS)["runsOrError"]["results"]
        mine = [r for r in runs if {t["key"]: t["value"] for t in r["tags"]}.get("dagster/partition") == new_pid]
        if any(r["status"] in ("FAILURE", "CANCELED") for r in mine):
            pytest.fail(f"the sensor's run failed: {mine}\n{log.read_text()[-4000:]}")
        # the sensor may also re-request the backfilled photos (cache hits): wait for all its runs
        return mine if mine and all(r["status"] == "SUCCESS" for r in runs) else None

    t2 = time.monotonic()
    wait_for("the upload sensor's run", sensor_run_done, 300, proc, log, every=2.0)
    print(f"sensor run done {time.monotonic() - t2:.1f} s after the upload")
    stats = gql(PARTITION_STATS, path=["ad_creatives"])["assetNodeOrError"]["partitionStats"]
    assert stats["numPartitions"] == 4 and stats["numMaterialized"] == 4, stats
    assert store.exists(f"products/{new_pid}/ads/400x400.png")
