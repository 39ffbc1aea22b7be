"""dagster-celery's `CeleryRunLauncher`, plus noticing a worker that went away mid-run.

The stock launcher judges a run's health by its Celery task's state in the result
backend. A worker that is killed (out of memory, machine lost, `kill -9`) never writes
another state, so the task stays STARTED, the daemon's run monitoring keeps hearing
"running", and the run hangs until `max_runtime_seconds` (hours). Here a STARTED task is
also looked up among the tasks the live workers report as active (Celery's `inspect
active`, answered by each worker's main process even while its run computes); a task no
live worker holds for `lost_worker_grace_seconds` is reported FAILED. Run monitoring then
fails the run, and the instance's `run_retries` launch a new run that re-executes from
the failure on a live worker: every stage that finished before is a cache hit.

Everything else (how runs are sent, queues, priorities, termination) is the stock
launcher's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from dagster import Field
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster_celery.launcher import CeleryRunLauncher as StockCeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

log = logging.getLogger("adgen_dagster.scale")


class CeleryRunLauncher(StockCeleryRunLauncher):
    """Runs as Celery tasks (dagster-celery); a run whose worker is gone is reported failed."""

    def __init__(self, *args, lost_worker_grace_seconds: float = 60.0, inspect_timeout_seconds: float = 2.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lost_worker_grace_seconds = float(lost_worker_grace_seconds)
        self.inspect_timeout_seconds = float(inspect_timeout_seconds)
        self._missing_since: dict[str, float] = {}
        self._active: tuple[float, set[str] | None] = (0.0, None)
        self._lock = threading.Lock()

    @classmethod
    def config_type(cls):
        return {
            **super().config_type(),
            "lost_worker_grace_seconds": Field(
                float, is_required=False, default_value=60.0,
                description="How long a STARTED run's task may be missing from every live worker's active tasks "
                "before the run is reported failed (its worker stopped or its machine went away)."),
            "inspect_timeout_seconds": Field(
                float, is_required=False, default_value=2.0,
                description="How long to wait for the workers' answers when asking them for their active tasks."),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)

    def active_task_ids(self) -> set[str] | None:
        """Task ids the live workers are executing; None when the broker cannot be asked.

        One broadcast serves every run checked in the same monitoring pass (a few seconds).
        """
        with self._lock:
            at, ids = self._active
            if ids is not None and time.monotonic() - at < max(5.0, self.inspect_timeout_seconds):
                return ids
            try:
                replies = self.celery.control.inspect(timeout=self.inspect_timeout_seconds).active() or {}
            except Exception as exc:  # noqa: BLE001 - broker unreachable: cannot tell, assume nothing
                log.warning("cannot ask the Celery workers for their active tasks: %s", exc)
                return None
            ids = {task["id"] for tasks in replies.values() for task in (tasks or []) if "id" in task}
            self._active = (time.monotonic(), ids)
            return ids

    def _revoke(self, task_id: str) -> None:
        """Best effort: should the worker only have been too slow to answer, stop its run there too,
        so the retry does not run beside it (a worker that answers to nothing ignores this)."""
        try:
            self.celery.control.revoke(task_id, terminate=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not revoke Celery task %s: %s", task_id, exc)

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        result = super().check_run_worker_health(run)
        if result.status != WorkerStatus.RUNNING:
            self._missing_since.pop(run.run_id, None)
            return result
        task_id = run.tags[DAGSTER_CELERY_TASK_ID_TAG]
        active = self.active_task_ids()
        if active is None or task_id in active:
            self._missing_since.pop(run.run_id, None)
            return result
        since = self._missing_since.setdefault(run.run_id, time.monotonic())
        missing_s = time.monotonic() - since
        if missing_s < self.lost_worker_grace_seconds:
            return result
        self._missing_since.pop(run.run_id, None)
        self._revoke(task_id)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery task {task_id} is STARTED but no live worker has been running it for {missing_s:.0f} s: "
            "its worker stopped or its machine went away",
        )
