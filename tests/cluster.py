"""A whole multi-machine deployment on this one machine, for tests/test_scale_out.py and
bench/scale_out.py: the files in deploy/ with local addresses.

Control plane: Postgres behind pgbouncer (deploy/pgbouncer.ini), Redis, and the Dagster
daemon (`dagster-daemon run -w deploy/workspace.yaml`) in its own folder. Workers: each
is `python -m adgen_dagster.scale.worker gpu N` with deploy/celery.yaml, started in a
folder of its own with its own DAGSTER_HOME, GPU lock folder and HF_HOME, as if on
another machine; what they share is what machines share: Postgres, Redis and the S3
store. Every process starts in its own session and is stopped by PID.

Only timings differ from deploy/dagster.yaml (`TEST_TIMINGS`: faster polls, a short grace
for a lost worker), so a test takes seconds where production waits minutes.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from tests.s3server import CREDS
from tests.services import DB, USER, PgBouncer, Postgres, Redis

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DAGSTER_DAEMON = Path(sys.executable).with_name("dagster-daemon")

TEST_TIMINGS = {
    "run_monitoring": {"poll_interval_seconds": 2},
    "run_launcher": {"config": {"lost_worker_grace_seconds": 3, "inspect_timeout_seconds": 1.0}},
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                        "config": {"dequeue_interval_seconds": 1}},
}
STARTED_PID = re.compile(r"Started process for run \(pid: (\d+)\)")


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _stop_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class Worker:
    """One Celery worker in a folder of its own (its 'machine')."""

    def __init__(self, name: str, folder: Path, proc: subprocess.Popen, log: Path):
        self.name, self.folder, self.proc, self.log = name, folder, proc, log
        self.pids_seen: set[int] = {proc.pid}
        self.started_at, self.ended_at = time.time(), None  # pids are reused: a pid means this worker only then

    def ran_at(self, when: float) -> bool:
        if self.ended_at is None and self.proc.poll() is not None:
            self.ended_at = time.time()
        return self.started_at <= when and (self.ended_at is None or when <= self.ended_at)

    def processes(self) -> set[int]:
        """The worker and its pool processes (remembered, so a run's pid still maps after a kill)."""
        if self.proc.poll() is None:
            self.pids_seen |= {self.proc.pid} | descendants(self.proc.pid)
        return self.pids_seen

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if re.search(r"\bready\.", self.log.read_text(errors="replace")):
                self.processes()
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        """The machine goes away: the worker and its run die at once."""
        self.processes()
        _stop_group(self.proc, signal.SIGKILL)
        self.ended_at = time.time()

    def shut_down(self) -> None:
        """A deploy stops it: SIGTERM to Celery, which finishes the run in progress, then exits."""
        self.processes()
        os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        _stop_group(self.proc)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class Cluster:
    """Servers, daemon and workers; `env` is the ADGEN_* environment every machine shares."""

    def __init__(self, root: Path, s3_endpoint: str, bucket: str, env: dict[str, str] | None = None,
                 timings: dict | None = None, durable: bool = False):
        self.root = Path(root)
        self.s3_endpoint, self.bucket = s3_endpoint, bucket
        self.adgen_env = dict(env or {})
        self.timings = TEST_TIMINGS if timings is None else timings
        self.postgres = Postgres(durable=durable)
        self.pgbouncer = PgBouncer(self.postgres)
        self.redis = Redis()
        self.daemon: subprocess.Popen | None = None
        self.workers: list[Worker] = []
        self._saved_env: dict[str, str | None] = {}

    # --- set-up ----------------------------------------------------------------------------

    def start(self) -> "Cluster":
        self.postgres.start()
        self.pgbouncer.start()
        self.redis.start()
        self.config = deep_merge(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()), self.timings)
        self.home = self.machine_home(self.root / "control")
        for key, value in self.instance_env().items():  # this process reads the same instance
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        return self

    def instance_env(self) -> dict[str, str]:
        """What the instance's `{env: ...}` entries read, plus the shared ADGEN_* settings."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pgbouncer.port), "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": DB,
            "DAGSTER_CELERY_BROKER_URL": self.redis.url(0), "DAGSTER_CELERY_BACKEND_URL": self.redis.url(1),
            "ADGEN_STORE__KIND": "s3", "ADGEN_STORE__BUCKET": self.bucket, "ADGEN_STORE__ENDPOINT_URL": self.s3_endpoint,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "ADGEN_STORE__MAX_ATTEMPTS": "3",
            "AWS_ACCESS_KEY_ID": CREDS["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": CREDS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": CREDS["region_name"],
        }

    def machine_home(self, folder: Path) -> Path:
        """A machine's DAGSTER_HOME: the cluster's dagster.yaml and celery.yaml."""
        home = folder / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        shutil.copy(DEPLOY / "celery.yaml", home / "celery.yaml")
        return home

    def machine_env(self, folder: Path, home: Path) -> dict[str, str]:
        env = {**os.environ, **self.instance_env(), **self.adgen_env, "DAGSTER_HOME": str(home),
               "PYTHONUNBUFFERED": "1", "HF_HOME": str(folder / "hf"), "ADGEN_GPU__LOCK_DIR": str(folder / "locks")}
        env.pop("PYTEST_XDIST_WORKER", None)
        return env

    def start_daemon(self) -> subprocess.Popen:
        folder = self.root / "control"
        log = folder / "daemon.log"
        with open(log, "wb") as out:
            self.daemon = subprocess.Popen([str(DAGSTER_DAEMON), "run", "-w", str(DEPLOY / "workspace.yaml")],
                                           cwd=folder, env=self.machine_env(folder, self.home), stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        self.daemon_log = log
        return self.daemon

    def wait_daemon(self, instance, timeout: float = 180.0) -> None:
        """Until the daemons that run this deployment have sent a heartbeat."""
        need = {"BACKFILL", "QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER"}
        self.wait("the daemon", lambda: need <= set(instance.get_daemon_heartbeats()), timeout)

    def start_worker(self, index: int, queue: str = "gpu", name: str | None = None) -> Worker:
        name = name or f"{queue}{index}"
        folder = self.root / name
        home = self.machine_home(folder)
        log = folder / "worker.log"
        cmd = [sys.executable, "-m", "adgen_dagster.scale.worker", queue, str(index), "--name", f"{name}@%h",
               "--config", str(home / "celery.yaml")]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=folder, env=self.machine_env(folder, home), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(name, folder, proc, log)
        self.workers.append(worker)
        return worker

    # --- observing -------------------------------------------------------------------------

    def wait(self, what: str, fn: Callable, timeout: float, every: float = 0.5):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.daemon.returncode}) waiting for {what}:\n{self.logs()}")
            last = fn()
            if last:
                return last
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}):\n{self.logs()}")

    def logs(self) -> str:
        parts = [f"--- daemon\n{self.daemon_log.read_text(errors='replace')[-3000:]}"] if self.daemon is not None else []
        parts += [f"--- worker {w.name}\n{w.tail(3000)}" for w in self.workers]
        return "\n".join(parts)

    @staticmethod
    def run_pid(instance, run_id: str) -> int | None:
        """The process that executed the run (Dagster's own 'Started process for run' event)."""
        for entry in instance.all_logs(run_id):
            m = STARTED_PID.search(entry.message or "")
            if m:
                return int(m.group(1))
        return None

    def worker_of(self, instance, run_id: str) -> Worker | None:
        """The worker whose process executed the run (its pid, while that worker lived)."""
        pid = self.run_pid(instance, run_id)
        record = instance.get_run_record_by_id(run_id)
        when = record.start_time if record is not None and record.start_time else time.time()
        found = [w for w in self.workers if pid is not None and pid in w.processes() and w.ran_at(when)]
        return found[0] if len(found) == 1 else None

    # --- tear-down -------------------------------------------------------------------------

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.daemon is not None:
            _stop_group(self.daemon)
        for server in (self.pgbouncer, self.postgres, self.redis):
            server.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# --- what tests and benchmarks do with a cluster ----------------------------------------------

ASSETS = ["product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"]
CACHE_LINE = re.compile(r"^(\w+) (\S+): cache (hit|miss|off)\b")


def upload_products(store, instance, n: int, prefix: str = "item", size: int = 96) -> list[str]:
    """n product photos in the store's uploads/, registered as products (as the upload sensor would)."""
    from resources.products import register_upload
    from tests.imagegen import encode, product_photo

    pids = []
    for i in range(n):
        colour = ((i * 53) % 200 + 30, (i * 97) % 200 + 30, (i * 151) % 200 + 30)
        key = f"uploads/{prefix}-{i:03d}.jpg"
        store.put(key, encode(product_photo(size=(size, size), colour=colour, seed=i), "JPEG", quality=90))
        pids.append(register_upload(store, key).product_id)
    instance.add_dynamic_partitions("products", pids)
    return pids


def add_backfill(instance, pids: list[str]) -> str:
    """A backfill of every asset over `pids`, as the UI's 'Materialize' -> 'Launch backfill' makes it;
    the daemon turns it into runs of ADGEN_BATCH_SIZE products."""
    import dagster as dg
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from adgen_dagster.definitions import defs as load_defs

    defs = load_defs()

    backfill_id = make_new_backfill_id()
    instance.add_backfill(PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id, asset_graph=defs.resolve_asset_graph(), partition_names=pids,
        asset_selection=[dg.AssetKey(a) for a in ASSETS], backfill_timestamp=time.time(), tags={},
        dynamic_partitions_store=instance, all_partitions=False, title=None, description=None, run_config=None))
    return backfill_id


def backfill_runs(instance, backfill_id: str) -> list:
    import dagster as dg

    return list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def messages(instance, run_id: str) -> list[str]:
    return [entry.message or "" for entry in instance.all_logs(run_id)]


def model_loads(instance, run_id: str, model: str = "BiRefNet") -> int:
    """Model loads in the run, from the model host's own log line ('loaded BiRefNet in ...')."""
    return sum(m.startswith(f"loaded {model} in ") for m in messages(instance, run_id))


def cache_results(instance, run_id: str) -> dict[tuple[str, str], str]:
    """{(stage, product): hit | miss | off} from the assets' per-product log lines."""
    out = {}
    for m in messages(instance, run_id):
        hit = CACHE_LINE.match(m)
        if hit:
            out[(hit.group(1), hit.group(2))] = hit.group(3)
    return out


def steps_done(instance, run_id: str) -> set[str]:
    return {e.dagster_event.step_key for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_SUCCESS"}


def steps_started(instance, run_id: str) -> set[str]:
    return {e.dagster_event.step_key for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_START"}
