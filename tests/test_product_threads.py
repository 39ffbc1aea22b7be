"""How products are spread over threads (adgen_dagster/product_threads.py): in order, bounded, parallel."""

from __future__ import annotations

import threading
import time

import pytest

from adgen_dagster.product_threads import overlapped, product_workers


def test_results_come_back_in_order_with_at_most_workers_running_at_once():
    running, peak, lock = 0, 0, threading.Lock()
    both_running = threading.Barrier(2, timeout=10)

    def start(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if i < 2:
            both_running.wait()  # the first two photos really run at the same time
        time.sleep(0.02 if i % 2 == 0 else 0.001)  # odd ones finish first
        with lock:
            running -= 1
        return i * 10

    done: list[int] = []
    overlapped(range(9), start, done.append, workers=2)
    assert done == [i * 10 for i in range(9)]
    assert peak == 2


def test_one_worker_runs_each_start_and_finish_in_turn_on_the_calling_thread():
    log: list[str] = []
    me = threading.get_ident()

    def start(i: int) -> int:
        assert threading.get_ident() == me
        log.append(f"start {i}")
        return i

    overlapped(range(3), start, lambda i: log.append(f"finish {i}"), workers=1)
    assert log == ["start 0", "finish 0", "start 1", "finish 1", "start 2", "finish 2"]


def test_finish_runs_on_the_calling_thread_and_the_window_stays_bounded():
    me, started, finished = threading.get_ident(), [], []

    def start(i: int) -> int:
        started.append(i)
        return i

    def finish(i: int) -> None:
        assert threading.get_ident() == me
        # never more than workers + 1 photos started and not yet finished (bounded memory)
        assert len(started) - len(finished) <= 3
        finished.append(i)

    overlapped(range(20), start, finish, workers=2)
    assert finished == list(range(20))


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), ("0", None), ("x", None), ("", None)])
def test_workers_setting(monkeypatch, value, expected):
    monkeypatch.setenv("ADGEN_RUN_WORKERS", value)
    got = product_workers()
    assert got == expected if expected is not None else 1 <= got <= 4
