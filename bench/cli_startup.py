"""`adgen cutout` end to end on one 1024 px sample, start-up included, vs. a CLI that imported Dagster.

Each row is a fresh process (subprocess), timed wall-clock, median of N runs (default 5),
pinned to 2 CPUs where the machine has more (the bar: under 2 s on 2 cores).

    .venv/bin/python bench/cli_startup.py [--runs 5] [--cores 2]

Rows:
- `adgen --help`: the console script's own start-up (typer, nothing of the core);
- `adgen cutout`: decode + cut-out + PNG of the sample, as a user runs it;
- baseline: the same cut-out in a process that first imports `adgen_dagster.definitions`,
  i.e. what `adgen cutout` would cost if the CLI imported Dagster (as the assets do);
- `import dagster` alone, for reference; and the cut-out's work measured in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import REPO, print_table

SAMPLE = REPO / "adgen_dagster" / "samples" / "abo" / "B07GTFSCHB_844a1cce.jpg"  # 1024 x 1024


def timed(cmd: list[str], runs: int, cpus: set[int] | None, cwd: Path) -> tuple[float, float]:
    """(median, min) wall seconds of `cmd` over `runs` fresh processes; fails loudly on a non-zero exit."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True,
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return statistics.median(times), min(times)


def in_process_cutout() -> float:
    """The cut-out's own work (decode, segment, encode), warm, median of 3: no start-up."""
    from adgen_dagster.backends import get_segmenter
    from adgen_dagster.imaging.decode import decode_upload
    from adgen_dagster.models.host import host_for
    from adgen_dagster.settings import AdgenSettings
    from adgen_dagster.encoding import encode_png

    s = AdgenSettings()
    seg = get_segmenter(s.segmenter, host=host_for(s.gpu))
    data = SAMPLE.read_bytes()
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        encode_png(seg(decode_upload(data, SAMPLE.name, s.decode), s.segment).rgba)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cores", type=int, default=2, help="pin each process to this many CPUs (0: no pinning)")
    args = ap.parse_args()

    adgen = shutil.which("adgen", path=str(Path(sys.executable).parent))
    if adgen is None:
        raise SystemExit(f"no adgen console script next to {sys.executable}: run `pip install -e .`")
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpus = set(avail[: args.cores]) if args.cores and len(avail) > args.cores else None
    env_note = f"{len(cpus) if cpus else len(avail) or os.cpu_count()} CPU(s) of {os.cpu_count()}"

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "cut.png")
        baseline = (
            "import sys, adgen_dagster.definitions\n"
            "from adgen_dagster.cli import main\n"
            f"sys.exit(main(['cutout', '-q', {str(SAMPLE)!r}, {out!r}]))"
        )
        rows_spec = [
            ("adgen --help (start-up only)", [adgen, "--help"]),
            ("adgen cutout <1024 px sample> out.png", [adgen, "cutout", "-q", str(SAMPLE), out]),
            ("baseline: import definitions + same cutout", [sys.executable, "-c", baseline]),
            ("python -c 'import dagster' (reference)", [sys.executable, "-c", "import dagster"]),
        ]
        results = {name: timed(cmd, args.runs, cpus, Path(tmp)) for name, cmd in rows_spec}

    work = in_process_cutout()
    cut = results[rows_spec[1][0]][0]
    base = results[rows_spec[2][0]][0]
    rows = [[name, med, best, (med / cut) if name != rows_spec[1][0] else 1.0] for name, (med, best) in results.items()]
    rows.append(["cut-out work in-process (decode+segment+png)", work, work, work / cut])
    print_table(["command", "median s", "min s", "x adgen cutout"], rows,
                title=f"adgen cutout start-up, {SAMPLE.name} (1024x1024), median of {args.runs}, {env_note}")
    print(f"\nadgen cutout end to end: {cut:.2f} s (bar: < 2 s); start-up and first-call overhead (everything but the warm cut-out work): {cut - work:.2f} s")
    print(f"importing Dagster would make it {base:.2f} s ({base / cut:.2f}x, +{base - cut:.2f} s)")


if __name__ == "__main__":
    main()
