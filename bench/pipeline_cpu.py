"""CPU pipeline benchmark: time and peak memory per stage per product at 1024 px.

Runs every stage of the classical pipeline on the bundled sample photos (resized so
the long side is 1024 px), first as bare core calls, then the same products through
Dagster (`materialize` on a temporary local store and instance), and prints per stage:
core ms, core peak MB above the process baseline, the Dagster step's ms and the ratio
Dagster/core (the cost of reading and writing the store plus Dagster's bookkeeping).

    python bench/pipeline_cpu.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from _util import PeakRSS, print_table  # (importing _util puts the repo on sys.path)
from PIL import Image

from adgen_dagster.demo import SAMPLES, sample_catalog
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.pipeline import run_product
from adgen_dagster.stages import STAGES as REGISTRY
from adgen_dagster.product_ids import product_id_for
from adgen_dagster.definitions import location_resources

BAR_MS = 3000
STAGES = [s.name for s in REGISTRY]


def sample_uploads(side: int = 1024) -> list[tuple[str, bytes, ProductDetails]]:
    out = []
    for row in sample_catalog():
        im = Image.open(io.BytesIO((SAMPLES / row["photo"]).read_bytes())).convert("RGB")
        scale = side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        out.append((row["upload"], buf.getvalue(), ProductDetails.model_validate(row.get("details") or {})))
    return out


def bench_core(uploads, repeat: int):
    times = {s: [] for s in STAGES}
    peaks = {s: [] for s in STAGES}
    totals = []

    def around(label, fn):
        with PeakRSS() as p:
            out = fn()
        peaks[label].append(p.peak_mb)
        return out

    run_product(uploads[0][1], uploads[0][0], "warmup", uploads[0][2])  # imports, font load, caches
    for _ in range(repeat):
        for name, data, details in uploads:
            out = run_product(data, name, product_id_for(name), details, around_stage=around)
            for s in STAGES:
                times[s].append(out.timings_ms[s])
            totals.append(sum(out.timings_ms.values()))
    return times, peaks, totals


def bench_dagster(uploads):
    import dagster as dg

    from assets_defs import PIPELINE_ASSETS
    from resources.object_store import LocalObjectStore
    from resources.products import register_upload
    from resources.store_resource import StoreResource

    times = {s: [] for s in STAGES}
    walls = []
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        store = LocalObjectStore(Path(tmp) / "store")
        resource = StoreResource(root=str(store.root))
        for i, (name, data, details) in enumerate(uploads):
            key = f"uploads/{name}"
            store.put(key, data)
            if details != ProductDetails():
                store.put(key + ".json", details.model_dump_json().encode())
            pid = register_upload(store, key).product_id
            instance.add_dynamic_partitions("products", [pid])
            t0 = time.perf_counter()
            result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(resource), instance=instance)
            wall = (time.perf_counter() - t0) * 1000
            if i == 0:
                continue  # first run pays Dagster's own warm-up
            walls.append(wall)
            for ev in result.all_events:
                if ev.event_type_value == "STEP_SUCCESS":
                    times[ev.step_key].append(ev.event_specific_data.duration_ms)
    return times, walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    uploads = sample_uploads()
    core_t, core_mem, totals = bench_core(uploads, args.repeat)
    dag_t, walls = bench_dagster(uploads)
    rows = []
    for s in STAGES:
        c = statistics.median(core_t[s])
        d = statistics.median(dag_t[s]) if dag_t[s] else float("nan")
        rows.append([s, c, max(core_mem[s]), d, d / c if c else float("nan")])
    core_total = statistics.median(totals)
    dag_total = sum(statistics.median(dag_t[s]) for s in STAGES if dag_t[s])
    rows.append(["all stages", core_total, max(max(v) for v in core_mem.values()), dag_total, dag_total / core_total])
    print_table(
        ["stage", "core ms (median)", "core peak MB", "dagster step ms", "dagster/core"],
        rows,
        title=f"CPU pipeline, {len(uploads)} sample products at 1024 px, {args.repeat} repeats (core), 1 run each (Dagster)",
    )
    print(f"\nper product: core all stages median {core_total:.0f} ms (max {max(totals):.0f} ms), bar <= {BAR_MS} ms: "
          f"{'PASS' if core_total <= BAR_MS else 'FAIL'}")
    print(f"per product through Dagster materialize (wall, incl. run start): median {statistics.median(walls):.0f} ms")


if __name__ == "__main__":
    main()
