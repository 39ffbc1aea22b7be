"""End to end, the multi-machine deployment on this machine (issue 15).

Started and stopped by the test, every server on 127.0.0.1 and a free port: Postgres behind
pgbouncer, Redis, the moto S3 server, the Dagster daemon, and Celery workers started with
`python -m adgen_dagster.scale.worker gpu N`, each in a folder of its own (its own
DAGSTER_HOME, GPU lock folder and HF_HOME), as if on separate machines; the instance is
deploy/dagster.yaml with faster polls (tests/cluster.py). The segmenter is BiRefNet through
its real loading code on a tiny model, so each worker's model host really loads a model.

One backfill of 24 products (runs of 4):
1. the first runs are executed by both workers, and each worker loads BiRefNet exactly
   once however many runs it executes;
2. mid-run, one worker's machine dies (SIGKILL of its process group) and the other worker
   is restarted the way a deploy does it (SIGTERM: finish the run, then exit): the run on
   the restarted worker still succeeds; the run on the dead one is failed by run
   monitoring (the launcher sees no live worker holding its task) and re-run from the
   failure by run retries, on the workers started again, and every stage result stored
   before the kill comes back from the cache;
3. in the end every product has every output, every object stored at the time of the
   kill is still there unchanged, and the store agrees with the result cache.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("dagster_celery", reason="the scale extra is not installed (pip install -e '.[scale]')")
pytest.importorskip("dagster_postgres", reason="the scale extra is not installed (pip install -e '.[scale]')")
pytest.importorskip("psycopg2", reason="the scale extra is not installed (pip install -e '.[scale]')")
pytest.importorskip("torch", reason="the tiny BiRefNet needs torch (pip install -e '.[neural]')")

import dagster as dg  # noqa: E402

from resources.s3_store import S3ObjectStore  # noqa: E402
from tests.cluster import (Cluster, add_backfill, backfill_runs, cache_results, model_loads, steps_done,  # noqa: E402
                           steps_started, upload_products)
from tests.services import missing_binaries  # noqa: E402
from tests.storecheck import check_store  # noqa: E402
from tests.tiny_birefnet import build_tiny_birefnet  # noqa: E402

pytestmark = [
    pytest.mark.scaleout,
    pytest.mark.timeout(1500),  # a backstop: every wait in the test has its own, shorter limit
    pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())} (.ci/run installs them)"),
]

N_PRODUCTS, BATCH = 24, 4
BUCKET = "scale-out"


def shared_env(model_dir) -> dict[str, str]:
    """The ADGEN_* settings every machine of the deployment has (small images keep it quick)."""
    return {
        "ADGEN_SEGMENTER": "birefnet", "ADGEN_BIREFNET__MODEL": str(model_dir), "ADGEN_BIREFNET__INPUT_SIZE": "128",
        "ADGEN_GPU__ALLOW_CPU": "true", "ADGEN_BATCH_SIZE": str(BATCH), "ADGEN_SENSOR__RUNNING": "false",
        "ADGEN_BACKDROP__WIDTH": "256", "ADGEN_BACKDROP__HEIGHT": "256",
        "ADGEN_COMPOSITE__WIDTH": "256", "ADGEN_COMPOSITE__HEIGHT": "256", "ADGEN_ADS__SIZES": "400x400",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        # One product at a time within a step: the test kills a worker in the middle of a stage, which it sees
        # from the per-product log lines; with 256-px images and two products at once the stage's last products
        # can finish between that sighting and the kill, and the run is then lost between stages instead.
        "ADGEN_RUN_WORKERS": "1",
    }


def snapshot(s3) -> dict[str, str]:
    """Every object in the bucket and its ETag (the MD5 of its bytes)."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return out


def test_backfill_on_two_workers_survives_a_lost_worker_and_a_restart(server, tmp_path):
    t0 = time.monotonic()
    s3 = server.client()
    s3.create_bucket(Bucket=BUCKET)
    store = S3ObjectStore(s3, BUCKET)
    model = build_tiny_birefnet(tmp_path / "weights" / "birefnet")
    with Cluster(tmp_path / "cluster", server.endpoint, BUCKET, shared_env(model)) as cluster:
        cluster.start_daemon()
        first = [cluster.start_worker(0), cluster.start_worker(1)]
        with dg.DagsterInstance.from_config(str(cluster.home)) as instance:
            assert type(instance.run_launcher).__module__ == "adgen_dagster.scale.launcher"
            pids = upload_products(store, instance, N_PRODUCTS)
            cluster.wait_daemon(instance)
            for worker in first:
                worker.wait_ready()
            print(f"cluster up in {time.monotonic() - t0:.0f} s")
            backfill_id = add_backfill(instance, pids)

            # 1. Both workers execute runs. Wait for two runs done and two in progress, one of them in
            # the middle of a stage (some of its products done, the step not): that run's worker dies.
            def in_a_stage(run) -> bool:
                done = steps_done(instance, run.run_id)
                return {"product_image", "segmentation"} <= done and any(
                    stage not in done for stage, _ in cache_results(instance, run.run_id))

            def two_done_and_one_mid_stage():
                runs = backfill_runs(instance, backfill_id)
                bad = [r.run_id for r in runs if r.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
                assert not bad, f"runs failed before any fault: {bad}\n{cluster.logs()}"
                done = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
                running = [r for r in runs if r.status == dg.DagsterRunStatus.STARTED]
                if len(done) < 2 or len(running) != 2:
                    return None
                victim = next((r for r in running if in_a_stage(r)), None)
                return victim and (victim, next(r for r in running if r is not victim))

            victim_run, deployed_run = cluster.wait("2 runs done and 1 in the middle of a stage",
                                                    two_done_and_one_mid_stage, 420, every=0.2)
            b, a = cluster.worker_of(instance, victim_run.run_id), cluster.worker_of(instance, deployed_run.run_id)
            assert {a, b} == set(cluster.workers), "the two runs in progress are not one per worker"

            # 2. b's machine dies; a is restarted by a deploy (SIGTERM: finish the run, then exit).
            b.kill()
            a.shut_down()
            before = snapshot(s3)
            t_fault = time.monotonic()
            print(f"fault after {t_fault - t0:.0f} s")
            assert a.proc.wait(timeout=300) == 0, f"worker a did not shut down cleanly:\n{a.tail()}"
            assert instance.get_run_by_id(deployed_run.run_id).status == dg.DagsterRunStatus.SUCCESS, \
                "the run in progress on the worker being restarted did not finish"
            a2, b2 = cluster.start_worker(0), cluster.start_worker(1)  # the new deploy, the machine back

            def lost_run_failed():
                run = instance.get_run_by_id(victim_run.run_id)
                return run.status == dg.DagsterRunStatus.FAILURE and run

            cluster.wait("the lost worker's run to fail", lost_run_failed, 120)
            failure = "\n".join(e.message or "" for e in instance.all_logs(victim_run.run_id)
                                if e.dagster_event is not None and e.dagster_event.event_type_value == "PIPELINE_FAILURE")
            assert "no live worker" in failure, failure

            def backfill_finished():
                runs = backfill_runs(instance, backfill_id)
                retries = list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": victim_run.run_id})))
                pending = [r for r in runs + retries if not r.is_finished]
                return (runs, retries) if not pending and retries else None

            runs, retries = cluster.wait("the backfill and the retry", backfill_finished, 420, every=1.0)
            print(f"backfill finished {time.monotonic() - t_fault:.0f} s after the fault")
            [retry] = retries
            assert retry.status == dg.DagsterRunStatus.SUCCESS, cluster.logs()
            assert cluster.worker_of(instance, retry.run_id) in (a2, b2)
            failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS and r.run_id != victim_run.run_id]
            assert not failed, f"other runs failed: {failed}\n{cluster.logs()}"

            # The retry re-executed from the failure: what the lost run finished was not run again, and
            # every stage result stored before the kill came back from the cache.
            finished_before = steps_done(instance, victim_run.run_id)
            assert {"product_image", "segmentation"} <= finished_before
            assert not finished_before & steps_started(instance, retry.run_id)
            redone = cache_results(instance, retry.run_id)
            stored = {(stage, pid) for stage, pid in redone if pid in _stored_products(before, stage)}
            assert stored, "the lost run had finished no product of the stage it was in"
            assert all(redone[sp] == "hit" for sp in stored), {sp: redone[sp] for sp in stored}
            print(f"retry: {len(stored)} stage results from the cache, {len(redone) - len(stored)} computed")

            # Model loads: once per worker process, however many runs it executed.
            per_worker: dict = {}
            for run in runs + retries:
                worker = cluster.worker_of(instance, run.run_id)
                assert worker is not None, f"run {run.run_id} was executed by no worker of the test"
                per_worker.setdefault(worker, []).append(run.run_id)
            loads = {w: sum(model_loads(instance, r) for r in ids) for w, ids in per_worker.items()}
            print("runs, BiRefNet loads per worker:",
                  [(f"{w.name} pid {w.proc.pid}", len(ids), loads[w]) for w, ids in per_worker.items()])
            for w in (a, b):
                assert len(per_worker[w]) >= 2 and loads[w] == 1, (w.name, per_worker[w], loads[w])
            assert all(n <= 1 for n in loads.values()), loads

    # 3. Every product complete, nothing stored before the kill lost or changed, store consistent.
    after = snapshot(s3)
    changed = {k for k, etag in before.items() if after.get(k) != etag}
    assert not changed, f"objects lost or changed after the kill: {sorted(changed)[:10]}"
    report = check_store(store)
    outputs = {"product_image.png", "nobg_image.png", "mask.png", "background.png", "composite.png", "retouched.png",
               "analysis.json", "ads/400x400.png", "ads/400x400.html"}
    for pid in pids:
        assert outputs <= set(report.products[pid]), (pid, sorted(outputs - set(report.products[pid])))
    print(f"whole test {time.monotonic() - t0:.0f} s")


def _stored_products(snap: dict[str, str], stage: str) -> set[str]:
    """Products with an output of `stage` under products/ at snapshot time (any of its files)."""
    files = {"product_image": "product_image.png", "segmentation": "mask.png", "background": "background.png",
             "composite": "composite.png", "retouched": "retouched.png", "analysis": "analysis.json",
             "ad_creatives": "ads/400x400.html"}
    suffix = "/" + files[stage]
    return {k.split("/")[1] for k in snap if k.startswith("products/") and k.endswith(suffix)}
