"""Catalog sensor benchmark: a huge catalog beside a one-row catalog, ours vs the previous sensor.

Builds a local store with N uploads (tiny non-empty files: the sensor never decodes),
`catalogs/big.csv` listing all of them and `catalogs/small.csv` listing one, then runs
catalog sensor ticks the Dagster way (`build_sensor_context`, an ephemeral instance)
until both are done. The baseline is the catalog sensor as it was before issue 14
(`git show <rev>:adgen_dagster/sensors.py`, default 200 rows per tick, catalogs in key
order), run for a few ticks on a fresh copy of the store and extrapolated: it would
need N / 200 ticks. "time to finish" is ticks x the sensor interval (60 s by default:
the daemon starts a tick at most that often) or the ticks' own time if longer.

    python bench/catalog_sensor.py                 # 100,000 rows
    python bench/catalog_sensor.py --rows 20000 --baseline-rev main
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from _util import REPO, print_table  # (importing _util puts the repo on sys.path)


def build_store(root: Path, rows: int) -> None:
    up, cats = root / "uploads", root / "catalogs"
    up.mkdir(parents=True)
    cats.mkdir()
    lines = ["file,name,headline"]
    for i in range(rows):
        (up / f"p{i:06d}.jpg").write_bytes(b"x")  # the catalog sensor only checks that the photo exists and is not empty
        lines.append(f"p{i:06d}.jpg,Product {i},Sale {i}")
    (cats / "big.csv").write_text("\n".join(lines) + "\n")
    (up / "lonely.jpg").write_bytes(b"x")
    (cats / "small.csv").write_text("file,name\nlonely.jpg,Lonely\n")


def baseline_module(rev: str) -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:adgen_dagster/sensors.py"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType("baseline_sensors")
    mod.__file__ = f"<{rev}:adgen_dagster/sensors.py>"
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def run_ticks(evaluate, store, settings, max_ticks: int) -> dict:
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    cursor, ticks, seconds, small_tick, runs = None, 0, [], None, 0
    try:
        while ticks < max_ticks:
            t0 = time.perf_counter()
            with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
                result = evaluate(ctx, store, settings)
            seconds.append(time.perf_counter() - t0)
            ticks += 1
            cursor = result.cursor or cursor
            for req in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            runs += len(result.run_requests)
            if small_tick is None and any(r.partition_key == "lonely" for r in result.run_requests):
                small_tick = ticks
            if not result.run_requests:
                break
    finally:
        instance.dispose()
    return {"ticks": ticks, "seconds": seconds, "small_tick": small_tick, "runs": runs}


def hms(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--baseline-rev", default="fbca7ee", help="git revision of the sensor before issue 14")
    ap.add_argument("--baseline-ticks", type=int, default=5, help="baseline ticks measured (then extrapolated)")
    args = ap.parse_args()

    from adgen_dagster.sensors.catalogs import evaluate_catalogs
    from adgen_dagster.settings import get_settings
    from resources.object_store import LocalObjectStore

    ours_settings = get_settings().sensor
    interval = ours_settings.catalog_interval_seconds
    work = Path(tempfile.mkdtemp(prefix="adgen-catalog-bench-"))
    try:
        t0 = time.perf_counter()
        build_store(work / "clean", args.rows)
        print(f"built {args.rows:,} uploads and catalogs in {time.perf_counter() - t0:.1f} s")
        shutil.copytree(work / "clean", work / "ours", symlinks=True)
        shutil.copytree(work / "clean", work / "base", symlinks=True)

        ours = run_ticks(evaluate_catalogs, LocalObjectStore(work / "ours"), ours_settings, 10_000)
        old = baseline_module(args.baseline_rev)
        base_settings = ours_settings.model_copy(update={"catalog_rows_per_tick": 200})
        base = run_ticks(old.evaluate_catalogs, LocalObjectStore(work / "base"), base_settings, args.baseline_ticks)

        total = args.rows + 1
        base_tick_s = sum(base["seconds"]) / len(base["seconds"])
        base_ticks = -(-total // 200)
        base_small = base["small_tick"] or -(-args.rows // 200) + 1  # key order: big.csv first, small.csv after it
        ours_finish = sum(max(interval, s) for s in ours["seconds"][:-1]) + ours["seconds"][-1]
        base_finish = base_ticks * max(interval, base_tick_s)
        rows = [
            ["rows per tick", f"{ours_settings.catalog_rows_per_tick:,} shared", "200, in key order", ""],
            ["seconds per tick (mean / max)", f"{sum(ours['seconds']) / ours['ticks']:.1f} / {max(ours['seconds']):.1f}",
             f"{base_tick_s:.1f} (measured over {len(base['seconds'])})", ""],
            ["ticks until the 1-row catalog is done", str(ours["small_tick"]), f"{base_small} (projected)",
             f"{base_small / ours['small_tick']:.0f}x"],
            ["ticks until both are done", str(ours["ticks"] - 1), f"{base_ticks} (projected)",
             f"{base_ticks / (ours['ticks'] - 1):.0f}x"],
            [f"time to finish at a {interval} s interval", hms(ours_finish), hms(base_finish) + " (projected)",
             f"{base_finish / ours_finish:.0f}x"],
            ["runs requested", f"{ours['runs']:,}", f"{base['runs']:,} in {len(base['seconds'])} ticks", ""],
        ]
        print_table(["catalog sensor", "ours", f"before ({args.baseline_rev})", "ratio"], rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
