"""A cross-process, per-device GPU lock that cannot outlive its holder.

`filelock.FileLock` takes an `flock` on the lock file: the kernel releases it when the
holding process exits for any reason (kill -9 included). The holder's pid is written into
the file only to say who is being waited for; threads of one process queue on an RLock in
front of it, without a time limit, as steps of one run do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

from adgen_dagster.models.errors import ModelError

log = logging.getLogger("adgen_dagster.models")
TELL_AFTER_S = 1.0  # a wait longer than this is logged, with who holds the lock


class GpuLock:
    """Re-entrant within a process; `waited_s` is how long the last first entry waited for other processes."""

    def __init__(self, path: Path, timeout_s: float):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._local = threading.RLock()
        # thread_local=False: the RLock above already keeps other threads out, so the file lock's own
        # re-entry count is this process's. No soft-lock fallback: only flock dies with its holder.
        self._file = FileLock(self.path, mode=0o666, thread_local=False, fallback_to_soft=False,
                              preserve_lock_file=True, on_acquired=self._write_holder)
        self.waited_s = 0.0

    def __enter__(self) -> "GpuLock":
        self._local.acquire()
        try:
            if self._file.is_locked:
                self._file.acquire()  # re-entry: only counts
            else:
                self._acquire_file()
        except BaseException:
            self._local.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._file.release()
        finally:
            self._local.release()

    def _acquire_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            self._file.acquire(timeout=min(TELL_AFTER_S, self.timeout_s))
        except Timeout:
            if self.timeout_s <= TELL_AFTER_S:
                raise self._timed_out(t0) from None
            log.info("waiting for the GPU lock %s held by %s", self.path, self.holder() or "another process")
            try:
                self._file.acquire(timeout=max(0.0, self.timeout_s - (time.monotonic() - t0)))
            except Timeout:
                raise self._timed_out(t0) from None
        self.waited_s = time.monotonic() - t0

    def _timed_out(self, t0: float) -> ModelError:
        return ModelError(
            f"waited {time.monotonic() - t0:.0f} s for the GPU lock {self.path} held by {self.holder() or 'another process'}; "
            f"raise ADGEN_GPU__LOCK_TIMEOUT_S or check what holds the GPU"
        )

    @staticmethod
    def _write_holder(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""
