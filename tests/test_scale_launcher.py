"""The pieces of the multi-machine set-up that can be checked without servers.

- The launcher (adgen_dagster/scale/launcher.py) reports a STARTED run whose Celery task no
  live worker holds as failed once the grace period is over, and only then; it leaves the
  stock launcher's answers alone otherwise, and says "running" when it cannot ask the broker
  (a broker outage must not fail every run). The Celery app is real, on Celery's in-memory
  broker and result backend; tests/test_scale_out.py runs the same launcher against real
  workers, where a healthy run must never be reported lost.
- A local store relative to the working directory is refused when runs are launched on other
  machines: each worker would keep its own outputs and cache.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("dagster_celery", reason="the scale extra is not installed (pip install -e '.[scale]')")

import dagster as dg  # noqa: E402
from dagster._core.launcher import WorkerStatus  # noqa: E402
from dagster._core.test_utils import create_run_for_test  # noqa: E402

from adgen_dagster.scale.launcher import CeleryRunLauncher  # noqa: E402
from adgen_dagster.definitions import location_resources  # noqa: E402
from resources.object_store import StoreError  # noqa: E402
from resources.store_resource import StoreResource, check_store_is_shared  # noqa: E402

IN_MEMORY = {"broker": "memory://", "backend": "cache+memory://"}


def launcher(**kwargs) -> CeleryRunLauncher:
    return CeleryRunLauncher(default_queue="gpu", inspect_timeout_seconds=0.1, **IN_MEMORY, **kwargs)


@pytest.fixture
def run_with_task(instance):
    def make(task_id: str):
        return create_run_for_test(instance, job_name="adgen_pipeline", tags={"dagster-celery/task_id": task_id})

    return make


class Workers:
    """What `celery inspect active` answers: {worker name: [task dicts]}."""

    def __init__(self, active: dict | None):
        self.replies = active

    def active(self):
        return self.replies


def test_a_started_task_no_worker_holds_fails_after_the_grace_period(run_with_task, monkeypatch):
    l = launcher(lost_worker_grace_seconds=0.5)
    revoked = []
    monkeypatch.setattr(l.celery.control, "revoke", lambda task_id, terminate: revoked.append((task_id, terminate)))
    l.celery.backend.store_result("t-lost", None, "STARTED")
    run = run_with_task("t-lost")
    first = l.check_run_worker_health(run)
    assert first.status == WorkerStatus.RUNNING  # missing, but not for long yet
    time.sleep(0.6)
    lost = l.check_run_worker_health(run)
    assert lost.status == WorkerStatus.FAILED
    assert "no live worker" in lost.msg and "t-lost" in lost.msg
    assert revoked == [("t-lost", True)]  # should its worker only have been slow, the run stops there too


def test_a_task_a_worker_reports_active_is_running(run_with_task, monkeypatch):
    l = launcher(lost_worker_grace_seconds=0)
    l.celery.backend.store_result("t-live", None, "STARTED")
    monkeypatch.setattr(l.celery.control, "inspect", lambda timeout: Workers(
        {"gpu0@host": [{"id": "t-other"}], "gpu1@host": [{"id": "t-live", "name": "execute_job"}]}))
    assert l.check_run_worker_health(run_with_task("t-live")).status == WorkerStatus.RUNNING
    monkeypatch.setattr(l.celery.control, "inspect", lambda timeout: Workers(None))  # no worker answers
    l._active = (0.0, None)  # noqa: SLF001 - forget the cached answer
    assert l.check_run_worker_health(run_with_task("t-live")).status == WorkerStatus.FAILED


def test_finished_tasks_keep_the_stock_answer_and_an_unreachable_broker_fails_nothing(run_with_task):
    l = launcher(lost_worker_grace_seconds=0)
    l.celery.backend.store_result("t-ok", 1, "SUCCESS")
    assert l.check_run_worker_health(run_with_task("t-ok")).status == WorkerStatus.SUCCESS
    down = CeleryRunLauncher(default_queue="gpu", broker="redis://127.0.0.1:1/0", backend="cache+memory://",
                             lost_worker_grace_seconds=0, inspect_timeout_seconds=0.1)
    down.celery.backend.store_result("t-unknown", None, "STARTED")
    assert down.active_task_ids() is None
    assert down.check_run_worker_health(run_with_task("t-unknown")).status == WorkerStatus.RUNNING


def test_the_launcher_loads_from_instance_config_with_its_settings():
    overrides = {"run_launcher": {"module": "adgen_dagster.scale.launcher", "class": "CeleryRunLauncher",
                                  "config": {**IN_MEMORY, "default_queue": "gpu", "lost_worker_grace_seconds": 7}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert isinstance(instance.run_launcher, CeleryRunLauncher)
        assert instance.run_launcher.lost_worker_grace_seconds == 7 and instance.run_launcher.supports_resume_run


def test_a_relative_local_store_is_refused_when_runs_go_to_other_machines(store_root, tmp_path, monkeypatch):
    from assets_defs import PIPELINE_ASSETS

    product_image = PIPELINE_ASSETS[0]

    celery = {"run_launcher": {"module": "adgen_dagster.scale.launcher", "class": "CeleryRunLauncher",
                               "config": {**IN_MEMORY, "default_queue": "gpu"}}}
    with dg.instance_for_test(overrides=celery) as instance:
        check_store_is_shared("local", str(store_root), instance)  # absolute: a folder every machine may mount
        check_store_is_shared("s3", ".adgen", instance)
        with pytest.raises(StoreError, match="ADGEN_STORE__KIND=s3"):
            check_store_is_shared("local", ".adgen", instance)
        monkeypatch.chdir(tmp_path)
        instance.add_dynamic_partitions("products", ["shoe"])
        with pytest.raises(Exception) as failed:
            dg.materialize([product_image], partition_key="shoe", instance=instance,
                           resources=location_resources(StoreResource(root=".adgen")))
        chain, exc = [], failed.value
        while exc is not None:
            chain.append(str(exc))
            exc = exc.__cause__
        assert any("ADGEN_STORE__KIND=s3" in message for message in chain), chain
    with dg.instance_for_test() as local:  # one machine: the local store as always
        check_store_is_shared("local", ".adgen", local)
