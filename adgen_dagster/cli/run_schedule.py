"""How `adgen run` spreads its photos over the cores: a few photos in flight at once, results in order.

One photo's stages leave a core idle much of the time (the model's threads wait on each
other, Python between the numpy/OpenCV calls holds the GIL for short stretches), and its
files are encoded after its stages. With two photos' stages on two threads and their files
encoded on the encoder threads, both cores stay busy: the heavy work (OpenCV, numpy,
Pillow's filters, zlib) runs without the GIL. Each photo's computation is the same as
alone (the stages share no state between photos; OpenCV's DNN gives the same output
whatever its thread count), so the files are the same bytes.

`overlapped` keeps at most `workers` photos in their stages plus one whose files are being
written, so memory stays bounded (a photo's 17 images are about 50 MB), and hands each
result to `finish` in the photos' order, on the calling thread.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

J = TypeVar("J")
R = TypeVar("R")


def product_workers() -> int:
    """Photos in their stages at once: one per core the process may use, at most 4 (ADGEN_RUN_WORKERS overrides)."""
    env = os.environ.get("ADGEN_RUN_WORKERS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def overlapped(jobs: Iterable[J], start: Callable[[J], R], finish: Callable[[R], None], workers: int) -> None:
    """`finish(start(job))` for every job, in order; up to `workers` `start`s run at once on threads.

    `start` must not raise (it returns its failure as a result); `finish` runs on this thread.
    """
    if workers <= 1:
        for job in jobs:
            finish(start(job))
        return
    window: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="adgen-photo") as pool:
        for job in jobs:
            window.append(pool.submit(start, job))
            while len(window) > workers:
                finish(window.popleft().result())
        while window:
            finish(window.popleft().result())
