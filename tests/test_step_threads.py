"""A Dagster step runs its batch's products a few at a time on threads: same bytes, in order, really parallel."""

from __future__ import annotations

import hashlib
import threading
import time

import dagster as dg

import assets_defs.common as common
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.store_resource import StoreResource
from tests.imagegen import encode, product_photo

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def product_files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "products").rglob("*")) if p.is_file() and p.name != "upload.json"}


def test_a_batch_runs_its_products_in_parallel_with_the_same_bytes_and_logs_in_order(
        monkeypatch, store_root, instance, add_product):
    pids = [add_product(f"{i}-item.jpg", data=encode(product_photo(colour=c, seed=i), "JPEG"))
            for i, c in enumerate([(200, 40, 40), (40, 160, 60), (40, 80, 200)])]
    resources = location_resources(StoreResource(root=str(store_root), cache=False))  # every run computes
    calls: list[tuple[str, str, str, float, float]] = []  # stage, product, thread, start, end
    real = common.run_stage

    def recorded(store, cache, stage, params, ctx, compute, given=None, backend=None):
        t0 = time.perf_counter()
        try:
            return real(store, cache, stage, params, ctx, compute, given, backend)
        finally:
            calls.append((stage.name, ctx.product_id, threading.current_thread().name, t0, time.perf_counter()))

    monkeypatch.setattr(common, "run_stage", recorded)

    def run(workers: str):
        monkeypatch.setenv("ADGEN_RUN_WORKERS", workers)
        calls.clear()
        result = dg.materialize(PIPELINE_ASSETS, resources=resources, instance=instance, run_config=QUIET,
                                tags={"dagster/asset_partition_range_start": pids[0],
                                      "dagster/asset_partition_range_end": pids[-1]})
        assert result.success
        return result, list(calls), product_files(store_root)

    def most_at_once(spans) -> int:
        edges = sorted([(s, 1) for *_, s, _ in spans] + [(e, -1) for *_, _, e in spans], key=lambda x: (x[0], x[1]))
        now = peak = 0
        for _, step in edges:
            now += step
            peak = max(peak, now)
        return peak

    parallel, calls2, files2 = run("2")
    stages = {c[0] for c in calls2}
    assert len(stages) == 7 and len(calls2) == 7 * len(pids)
    assert all(thread.startswith("adgen-photo") for _, _, thread, _, _ in calls2)
    per_stage = {s: [c for c in calls2 if c[0] == s] for s in stages}
    assert max(most_at_once(spans) for spans in per_stage.values()) == 2  # two products at once, never three
    # Results are handled on the step's own thread in the products' order: its log lines say so.
    logs = [e.user_message for e in instance.all_logs(parallel.run_id)
            if e.user_message.startswith("segmentation ") and ": cache " in e.user_message]
    assert [m.split()[1].rstrip(":") for m in logs] == pids

    _, calls1, files1 = run("1")
    assert all(most_at_once([c for c in calls1 if c[0] == s]) == 1 for s in stages)
    assert len(files1) == 17 * len(pids) and files1 == files2  # the same bytes, one at a time or two
