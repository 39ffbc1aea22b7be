"""Issue 7, concurrency: overlapping runs on the local instance, through the real queue.

`dagster dev` (webserver + daemon, the repository's dagster.yaml: queued run coordinator with
at most 2 runs in progress, the `gpu` pool limited to 1) gets 4 runs launched at once over
GraphQL, each a range of products that overlaps the others. The daemon dequeues them and
each runs in its own process on one local store. The test holds the pool's only slot while
the runs start, so both runs in progress must stop and wait at their first model step (the
pool is exercised whatever the timing), then lets go. Checked: every run succeeded; never
more than 2 runs in progress, and 2 at once did happen; no model step started while the slot
was held and no two steps of the `gpu` pool ever ran at the same time, across all runs; and
the store is consistent: every product has all its outputs, each equal to a cache entry's,
and each stage has exactly one cache entry per product (none lost, none duplicated by the
races).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from adgen_dagster.stages import STAGES
from resources.products import register_upload
from tests.imagegen import encode, product_photo
from tests.storecheck import check_store
from tests.test_e2e_dagster_dev import ADD_PARTITION, WORKSPACE, dagster_dev, pytestmark, wait_for  # noqa: F401 (fixture, skip mark)

GPU_STEPS = {s.name for s in STAGES if s.backend}  # the stages in the `gpu` pool

LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""

RUNS = """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
  ... on Runs { results { runId status startTime endTime } } } }"""


HOLDER = "test-holds-the-gpu-slot"


def step_events(instance, run_ids) -> list[tuple[str, str, str, float]]:
    """(run id, step, STEP_START | STEP_SUCCESS | BLOCKED, timestamp) of the runs' steps, in order."""
    out = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            ev = entry.dagster_event
            if ev is None or not ev.step_key:
                continue
            if ev.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                out.append((run_id, ev.step_key, ev.event_type_value, entry.timestamp))
            elif ev.event_type_value == "ENGINE_EVENT" and "blocked by limit for pool gpu" in (ev.message or ""):
                out.append((run_id, ev.step_key, "BLOCKED", entry.timestamp))
    return out


def overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that are open at one moment."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = cur = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def test_overlapping_runs_through_the_queue_and_the_gpu_pool(dagster_dev, tmp_path):
    proc, gql, store, log = dagster_dev

    def loaded():
        entries = gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        loc = entries[0]["locationOrLoadError"] if entries else None
        return (entries[0]["name"], loc) if loc and loc["__typename"] == "RepositoryLocation" else None

    location_name, location = wait_for("the code location", loaded, 120, proc, log)
    [repo] = location["repositories"]
    repo_selector = {"repositoryLocationName": location_name, "repositoryName": repo["name"]}

    pids = []
    for i, colour in enumerate([(200, 60, 40), (40, 80, 200), (30, 150, 60)]):
        store.put(f"uploads/shared-{i}.jpg", encode(product_photo((96, 96), colour=colour, seed=i), "JPEG"))
        pids.append(register_upload(store, f"uploads/shared-{i}.jpg").product_id)
        added = gql(ADD_PARTITION, repo=repo_selector, key=pids[-1])["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added

    # The gpu pool's one slot is held from outside (as a long model step would hold it) while
    # the runs start, so they must wait for it: the pool is exercised whatever the timing.
    home = str(tmp_path / "home")
    with dg.DagsterInstance.from_config(home) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("gpu")
        assert storage.get_concurrency_info("gpu").slot_count == 1  # dagster.yaml: pools.default_limit
        assert storage.claim_concurrency_slot("gpu", HOLDER, "holder").is_claimed

        a, b, c = pids
        ranges = [(a, c), (a, b), (b, c), (a, c)]  # every product is in at least 3 of the 4 runs
        run_ids = []
        for start, end in ranges:
            launched = gql(LAUNCH_RUN, params={
                "selector": {**repo_selector, "jobName": "adgen_pipeline"},
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": ASSET_PARTITION_RANGE_START_TAG, "value": start},
                                               {"key": ASSET_PARTITION_RANGE_END_TAG, "value": end}]},
            })["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            assert launched["run"]["status"] == "QUEUED"  # the queued run coordinator has it, not a process yet
            run_ids.append(launched["run"]["runId"])

        def both_waiting():
            """Two runs in progress, both stopped at their first gpu step (background), none started one."""
            ev = step_events(instance, run_ids)
            assert not [e for e in ev if e[2] == "STEP_START" and e[1] in GPU_STEPS], "a gpu step ran while the slot was held"
            return len({r for r, _, kind, _ in ev if kind == "BLOCKED"}) == 2

        wait_for("two runs waiting for the gpu slot", both_waiting, 180, proc, log, every=0.5)
        storage.free_concurrency_slots_for_run(HOLDER)

        def finished():
            runs = gql(RUNS, ids=run_ids)["runsOrError"]["results"]
            bad = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
            assert not bad, f"runs failed: {bad}\n{log.read_text()[-4000:]}"
            return runs if len(runs) == len(run_ids) and all(r["status"] == "SUCCESS" for r in runs) else None

        runs = wait_for("the 4 runs", finished, 240, proc, log, every=1.0)

        # The queue: at most 2 runs in progress at once (dagster.yaml), and 2 did run together.
        assert overlap([(r["startTime"], r["endTime"]) for r in runs]) == 2
        # The gpu pool (limit 1): no two model steps at the same time, across all runs.
        intervals, open_steps = [], {}
        for run_id, step, kind, ts in step_events(instance, run_ids):
            if step in GPU_STEPS and kind == "STEP_START":
                open_steps[(run_id, step)] = ts
            elif step in GPU_STEPS and kind == "STEP_SUCCESS":
                intervals.append((open_steps.pop((run_id, step)), ts))
        assert len(intervals) == 3 * len(run_ids) and not open_steps
        assert overlap(intervals) == 1, sorted(intervals)

    # The store: complete and consistent, one cache entry per product and stage.
    report = check_store(store)
    assert set(report.products) == set(pids)
    for pid in pids:
        assert store.exists(f"products/{pid}/ads/400x400.html") and store.exists(f"products/{pid}/analysis.json")
    for stage in STAGES:
        assert len(report.manifests_of(stage.name)) == len(pids), stage.name
