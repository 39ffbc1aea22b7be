"""Issue 7, storage faults: whatever happens to the store mid-run, nothing half-written is
ever visible, what was stored stays whole, and the next run completes.

- S3: the endpoint goes away during a batched run (a backfill's run) and comes back, once
  while botocore is still retrying (the run succeeds) and once only after the run gave up
  (the run fails with one message naming the setting; the re-run completes from cache);
- local store: a run process killed with SIGKILL in the middle of writing an output;
- local store: the disk fills up in the middle of a run.

After each, `tests.storecheck.check_store` walks the whole store: every PNG decodes, every
cache manifest's blobs exist and hash to their names, every product output is one of the
cache's outputs.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_aws.s3 import S3Resource

from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.object_store import LocalObjectStore
from resources.products import register_upload
from resources.s3_store import S3ObjectStore
from resources.store_resource import StoreResource
from tests.imagegen import encode, product_photo
from tests.storecheck import check_store

SMALL = {"ops": {"background": {"config": {"width": 192, "height": 192}},
                 "composite": {"config": {"width": 192, "height": 192}},
                 "ad_creatives": {"config": {"sizes": "256x256"}}}}
BRIGHTER = {"ops": {**SMALL["ops"], "retouched": {"config": {"brightness": 1.2}}}}
DOWNSTREAM_OF_RETOUCH = {"retouched", "analysis", "ad_creatives"}
OUTPUTS = {"product_image.png", "details.json", "nobg_image.png", "mask.png", "background.png", "composite.png",
           "composite_mask.png", "retouched.png", "analysis.json", "ads/256x256.png", "ads/256x256.html"}


def add_products(store, instance, n: int, stem: str = "item") -> list[str]:
    pids = []
    for i in range(n):
        key = f"uploads/{stem}-{i}.jpg"
        store.put(key, encode(product_photo((96, 96), colour=(60 * i % 255, 90, 200 - 50 * i), seed=i), "JPEG"))
        pids.append(register_upload(store, key).product_id)
    instance.add_dynamic_partitions("products", pids)
    return pids


def materialize(resource, instance, pids=None, run_config=SMALL, partition_key=None):
    tags = {ASSET_PARTITION_RANGE_START_TAG: pids[0], ASSET_PARTITION_RANGE_END_TAG: pids[-1]} if pids else {}
    return dg.materialize(PIPELINE_ASSETS, resources=location_resources(resource), instance=instance, run_config=run_config,
                          tags=tags, partition_key=partition_key, raise_on_error=False)


def failures(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def cache_status(result) -> dict[tuple[str, str], str]:
    """{(asset, partition): hit|miss} from a run's materializations. In a batched run every
    partition carries the first product's metadata, so this tells the first product's status."""
    return {(e.asset_key.to_user_string(), e.partition): e.step_materialization_data.materialization.metadata["cache"].value
            for e in result.get_asset_materialization_events()}


def every_output(store, pids) -> dict[str, bytes]:
    return {o.key: store.get(o.key) for pid in pids for o in store.list(f"products/{pid}/")}


# --- S3: the endpoint goes away during a batched run ---------------------------------------

# Distinctive credentials (moto accepts any), so a leak into logs or metadata can be found.
KEY_ID, SECRET = "AKIAADGENLEAKCHECK01", "adgen-secret-must-never-be-logged-0123456789"


def s3_client(server, max_attempts: int) -> S3Resource:
    return S3Resource(endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET, max_attempts=max_attempts)



@pytest.fixture
def outage(monkeypatch, server):
    """`outage(key_part, back_after)`: the S3 server stops just before the first write whose
    key contains `key_part`; it comes back after `back_after` seconds (None: when the test
    says so, with `server.start()`)."""
    state = {"armed": None, "stopped_at": None}
    real_put = S3ObjectStore.put

    def put(self, key, data, content_type=None):
        armed = state["armed"]
        if armed and armed[0] in key:
            state["armed"] = None
            state["stopped_at"] = key
            server.stop()
            if armed[1] is not None:
                threading.Timer(armed[1], server.start).start()
        return real_put(self, key, data, content_type)

    monkeypatch.setattr(S3ObjectStore, "put", put)

    def arm(key_part: str, back_after: float | None):
        state["armed"] = (key_part, back_after)
        return state

    return arm


def test_s3_endpoint_going_away_and_coming_back_during_a_backfill(server, outage, instance):
    bucket = f"adgen-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    # Generous retries: botocore backs off 50 ms x 2^attempt (random), ~25 s at most in all.
    patient = StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=s3_client(server, max_attempts=10))
    impatient = StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=s3_client(server, max_attempts=1))
    s3 = patient.get_store()
    pids = add_products(s3, instance, 3)

    # 1. The server disappears while the second product's composite is written and is back
    #    0.5 s later, while botocore is still retrying: the run does not even notice.
    state = outage(f"products/{pids[1]}/composite.png", back_after=0.5)
    first = materialize(patient, instance, pids)
    assert state["stopped_at"] == f"products/{pids[1]}/composite.png"
    assert first.success, failures(first)
    report = check_store(s3)
    assert set(report.products) == set(pids) and all(set(files) == OUTPUTS for files in report.products.values())

    # 2. With a changed retouch setting, the server disappears at the second product's
    #    retouched output and stays away longer than the run retries: the batch fails with
    #    one message that names the setting; nothing stored is half-written or stale.
    before = every_output(s3, pids)
    state = outage(f"products/{pids[1]}/retouched.png", back_after=None)
    second = materialize(impatient, instance, pids, run_config=BRIGHTER)
    assert state["stopped_at"] == f"products/{pids[1]}/retouched.png"
    assert not second.success
    [message] = failures(second)
    # Two products are in flight at once (product threads), so the write that fails first
    # may be the other one's; either way the one message names the product and the setting.
    assert any(f"retouched failed for product {p!r}" in message for p in pids)
    assert "cannot reach the S3 endpoint" in message and "ADGEN_STORE__ENDPOINT_URL" in message
    server.start()  # it comes back
    check_store(s3)
    after = every_output(s3, pids)
    changed = {k for k in before if after[k] != before[k]}
    # At most the new retouch of a product whose write went through before the outage; never the one that hit it.
    assert changed <= {f"products/{p}/retouched.png" for p in pids if p != pids[1]}
    assert after.keys() == before.keys()

    # The backfill re-executed: done work is a cache hit, the rest is computed, all consistent.
    third = materialize(patient, instance, pids, run_config=BRIGHTER)
    assert third.success, failures(third)
    status = cache_status(third)
    assert {a for (a, _), s in status.items() if s == "miss"} == DOWNSTREAM_OF_RETOUCH - {"retouched"}
    report = check_store(s3)
    assert all(s3.get(f"products/{p}/retouched.png") != before[f"products/{p}/retouched.png"] for p in pids)
    assert len(report.manifests_of("retouched")) == 2 * len(pids)  # both settings, every product: none lost

    # No credential reached the run records, event logs, metadata or captured logs (all files
    # of the instance; the metadata's s3:// locations show the scan does see what runs record).
    files = [p.read_bytes() for p in Path(instance.root_directory).rglob("*") if p.is_file()]
    assert any(f"s3://{bucket}/shop/products/".encode() in data for data in files)
    assert not [data for data in files if SECRET.encode() in data or KEY_ID.encode() in data]
    assert SECRET not in message and KEY_ID not in message


# --- local store: a run process killed in the middle of a write ------------------------------


def run_until_killed(store_root: str, home: str, pid: str, marker: str) -> None:
    """Child process: a real run on the local store that stops dead inside the write of
    `retouched.png` (its bytes in the temporary file, not yet renamed) and waits for SIGKILL."""
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".retouched.png."):
            Path(marker).write_text(os.readlink(f"/proc/self/fd/{fd}"))
            time.sleep(600)

    os.fsync = fsync
    with dg.DagsterInstance.from_config(home) as instance:
        dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(StoreResource(root=store_root)),
                       instance=instance, run_config=BRIGHTER)


def test_run_killed_mid_write_leaves_no_partial_output_and_the_next_run_completes(tmp_path):
    home, root, marker = tmp_path / "home", tmp_path / "store", tmp_path / "in-the-write"
    home.mkdir()
    store, resource = LocalObjectStore(root), StoreResource(root=str(root))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [pid] = add_products(store, instance, 1, stem="vase")
        assert materialize(resource, instance, partition_key=pid).success
    before = every_output(store, [pid])

    child = multiprocessing.get_context("spawn").Process(target=run_until_killed, args=(str(root), str(home), pid, str(marker)))
    child.start()
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the run never reached the write (exit code {child.exitcode})"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == -signal.SIGKILL

    # The temporary file of the interrupted write is on disk, but it is not an object and the
    # output it was to replace is the previous one, whole.
    temp = Path(marker.read_text())
    assert temp.exists() and temp.parent == root / "products" / pid
    assert all(not o.key.endswith(".part") for o in store.list(""))
    assert every_output(store, [pid]) == before
    check_store(store)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [killed] = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert killed.tags.get("dagster/partition") == pid  # it really died mid-run
        rerun = materialize(resource, instance, partition_key=pid, run_config=BRIGHTER)
    assert rerun.success, failures(rerun)
    # retouched was committed to the cache before the kill: the re-run restores it from there.
    assert cache_status(rerun)[("retouched", pid)] == "hit"
    after = every_output(store, [pid])
    assert after[f"products/{pid}/retouched.png"] != before[f"products/{pid}/retouched.png"]
    check_store(store)


# --- local store: the disk fills up during a run -------------------------------------------------


def test_disk_full_fails_the_step_clearly_and_the_run_completes_once_there_is_space(store, store_resource, instance, monkeypatch):
    pids = add_products(store, instance, 2, stem="lamp")
    root = str(store.root)
    disk = {"full": False, "refused": []}
    real_fsync = os.fsync

    def fsync(fd):
        """A disk that fills up when the composite stage starts writing: from then on, every
        write into the store fails with ENOSPC (as the kernel reports it, at fsync)."""
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(root + os.sep) and (disk["full"] or "composite" in path[len(root):]):
            disk["full"] = True
            disk["refused"].append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = materialize(store_resource, instance, pids)
    assert not result.success and disk["refused"]
    [message] = failures(result)
    assert f"composite failed for product {pids[0]!r}: disk full while writing" in message
    assert f"(local store root: {root}); free space or set ADGEN_STORE__ROOT" in message
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == \
           {"product_image", "nobg_image", "mask", "background"}
    # No temporary file left behind anywhere, nothing of the composite stage stored.
    assert not [p for p in root_files(store.root) if p.name.endswith(".part")]
    assert not store.exists(f"products/{pids[0]}/composite.png") and not list(store.list("cache/composite/"))
    check_store(store)

    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed
    rerun = materialize(store_resource, instance, pids)
    assert rerun.success, failures(rerun)
    status = cache_status(rerun)
    assert status[("background", pids[0])] == "hit" and status[("composite", pids[0])] == "miss"
    report = check_store(store)
    assert set(report.products) == set(pids)


def root_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]
