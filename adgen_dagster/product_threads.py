"""How a run spreads its products over the cores: a few products in flight at once, results in order.

Used by `adgen run` (photos) and by every Dagster step that holds several products (a
batched run, `assets_defs.common.materialize_stage`), so both keep both cores busy the
same way.

One product's stage leaves a core idle much of the time (the model's threads wait on each
other, Python between the numpy/OpenCV calls holds the GIL for short stretches), and its
files are encoded after its stages. With two products on two threads and their files
encoded on the encoder threads, both cores stay busy: the heavy work (OpenCV, numpy,
Pillow's filters, zlib) runs without the GIL. Each product's computation is the same as
alone (the stages share no state between products; OpenCV's DNN gives the same output
whatever its thread count; the neural backends' model host serialises model calls), so the
files are the same bytes.

`overlapped` keeps at most `workers` products in flight plus one being finished, so memory
stays bounded (a photo's 17 images are about 50 MB), and hands each result to `finish` in
the products' order, on the calling thread (where Dagster's logging and events belong).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

J = TypeVar("J")
R = TypeVar("R")


def product_workers() -> int:
    """Products in flight at once: one per core the process may use, at most 4 (ADGEN_RUN_WORKERS overrides)."""
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
