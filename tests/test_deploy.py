"""deploy/: every file an operator uses is loaded and checked here (docker and Kubernetes
themselves cannot run on this machine; tests/test_scale_out.py runs the instance, the Celery
config, pgbouncer.ini, the workspace and the worker command for real).

- dagster.yaml: Dagster builds an instance from it (the Celery launcher with its extra
  settings, the run queue and pool limits, run monitoring and retries, S3 compute logs);
  its Postgres section validates against dagster-postgres' schema and makes a psycopg2 URL.
- celery.yaml: dagster-celery's own validation; every Celery setting in it exists.
- docker-compose.yaml: the services, one GPU per worker, one GPU worker per run slot.
- helm/values.yaml: the instance the chart builds from these values is valid and the same
  as dagster.yaml; helm/gpu-workers.yaml: each object parses with the kubernetes client's
  models without losing a field, and the workers mount that instance and this celery.yaml.
"""

from __future__ import annotations

import configparser
import json
import sys

import pytest
import yaml

pytest.importorskip("dagster_celery", reason="the scale extra is not installed (pip install -e '.[scale]')")
pytest.importorskip("dagster_postgres", reason="the scale extra is not installed (pip install -e '.[scale]')")

import dagster as dg  # noqa: E402
from dagster._config import process_config  # noqa: E402

from tests.conftest import REPO  # noqa: E402

DEPLOY = REPO / "deploy"
ENV = {
    "DAGSTER_PG_HOST": "pgbouncer", "DAGSTER_PG_PORT": "6432", "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "pw",
    "DAGSTER_PG_DB": "dagster", "DAGSTER_CELERY_BROKER_URL": "redis://redis:6379/0",
    "DAGSTER_CELERY_BACKEND_URL": "redis://redis:6379/1", "ADGEN_STORE__BUCKET": "my-shop-ads",
}
POSTGRES_SECTIONS = ("run_storage", "event_log_storage", "schedule_storage")


def load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.fixture
def env(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def check_postgres(config: dict, klass=None) -> str:
    """The Postgres config validates against dagster-postgres' schema; returns its SQLAlchemy URL."""
    import sqlalchemy
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    result = process_config((klass or DagsterPostgresStorage).config_type(), config)
    assert result.success, result.errors
    url = pg_url_from_config(result.value)
    dialect = sqlalchemy.engine.make_url(url).get_dialect()
    assert dialect.driver == "psycopg2", url  # SQLAlchemy 2.1's plain postgresql:// would be psycopg 3
    return url


def instance_without_postgres(config: dict, tmp_path) -> dg.DagsterInstance:
    """The instance Dagster builds from `config`, with SQLite in place of Postgres (checked apart)."""
    cfg = {k: v for k, v in config.items() if k not in ("storage", *POSTGRES_SECTIONS)}
    cfg["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    return dg.DagsterInstance.from_config(str(tmp_path))


def gpu_workers_in_compose() -> list[dict]:
    services = load("docker-compose.yaml")["services"]
    return [s for name, s in services.items() if name.startswith("gpu-worker")]


def test_cluster_dagster_yaml_builds_the_celery_instance(env, tmp_path):
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    from adgen_dagster.scale.launcher import CeleryRunLauncher

    config = load("dagster.yaml")
    url = check_postgres(config["storage"]["postgres"])
    assert url.startswith("postgresql+psycopg2://dagster:pw@pgbouncer:6432/dagster")
    with instance_without_postgres(config, tmp_path) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, CeleryRunLauncher)
        assert (launcher.broker, launcher.backend, launcher.default_queue) == (
            "redis://redis:6379/0", "redis://redis:6379/1", "gpu")
        assert launcher.lost_worker_grace_seconds == 60
        queue = instance.get_concurrency_config()
        n_gpu = len(gpu_workers_in_compose())
        assert queue.run_queue_config.max_concurrent_runs == n_gpu == queue.pool_config.default_pool_limit == 2
        assert {"key": "dagster-celery/queue", "value": "cpu", "limit": 1} in queue.run_queue_config.tag_concurrency_limits
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        monitoring = instance.run_monitoring_settings
        assert instance.run_monitoring_enabled and monitoring["max_resume_run_attempts"] == 0
        assert monitoring["start_timeout_seconds"] >= 1800  # a run waiting in the broker is STARTING
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure  # bad products: the split sensor
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        assert instance.compute_log_manager.inst_data.config_dict["bucket"] == {"env": "ADGEN_STORE__BUCKET"}


def test_celery_yaml_is_a_valid_worker_config(env):
    from celery.app.defaults import DEFAULTS
    from dagster_celery.cli import get_validated_config

    config = get_validated_config(str(DEPLOY / "celery.yaml"))
    assert (config["broker"], config["backend"]) == ("redis://redis:6379/0", "redis://redis:6379/1")
    settings = config["config_source"]
    unknown = set(settings) - set(DEFAULTS)
    assert not unknown, f"not Celery settings: {unknown}"
    assert settings["worker_disable_prefetch"] is True and settings["worker_prefetch_multiplier"] == 1


def test_worker_command_one_gpu_each_concurrency_one():
    from adgen_dagster.scale.worker import celery_command

    cmd, env = celery_command("gpu", 3)
    assert env == {"CUDA_VISIBLE_DEVICES": "3"}
    assert cmd[:6] == [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker"]
    assert cmd[cmd.index("-Q") + 1] == "gpu" and cmd[cmd.index("--concurrency") + 1] == "1"
    assert cmd[cmd.index("-n") + 1] == "gpu3@%h"
    assert not any("max-tasks-per-child" in part for part in cmd)  # a new process would reload the models
    cmd, env = celery_command("cpu", 4)
    assert env == {} and cmd[cmd.index("-Q") + 1] == "cpu" and cmd[cmd.index("--concurrency") + 1] == "4"


def test_systemd_unit_starts_one_worker_per_gpu_and_stops_it_warm():
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(DEPLOY / "adgen-worker@.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("-m adgen_dagster.scale.worker gpu %i")
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"  # SIGTERM to Celery's main process only
    assert service["TimeoutStopSec"] == "30min" and service["Restart"] == "always"
    assert service["Environment"] == "DAGSTER_HOME=/opt/dagster/home"


def test_compose_runs_the_deployment_one_gpu_per_worker():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert {"postgres", "pgbouncer", "redis", "webserver", "daemon", "gpu-worker-0", "gpu-worker-1"} <= set(services)
    dagster_services = ["webserver", "daemon", "cpu-worker", *[n for n in services if n.startswith("gpu-worker")]]
    shared = services["webserver"]["environment"]
    for name in dagster_services:
        s = services[name]
        assert s["environment"] == shared, f"{name}: every machine needs the same settings"
        assert s["image"] == services["webserver"]["image"] and s["environment"]["ADGEN_STORE__KIND"] == "s3"
    assert shared["DAGSTER_PG_HOST"].endswith(":-pgbouncer}") and shared["DAGSTER_PG_PORT"] == "6432"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert "/opt/dagster/home/workspace.yaml" in services["webserver"]["command"]
    gpus = set()
    for name in (n for n in services if n.startswith("gpu-worker")):
        s = services[name]
        assert s["command"][:5] == ["python", "-m", "adgen_dagster.scale.worker", "gpu", "0"]  # the container's only GPU
        [device] = s["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and len(device["device_ids"]) == 1
        gpus.add(device["device_ids"][0])
        assert s["stop_grace_period"] == "30m"  # a deploy's SIGTERM lets the run finish
    assert len(gpus) == len(gpu_workers_in_compose()), "two workers share a GPU"
    assert services["cpu-worker"]["command"][3] == "cpu" and services["cpu-worker"]["profiles"] == ["cpu"]
    ini = configparser.ConfigParser()
    ini.read(DEPLOY / "pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction" and ini["pgbouncer"]["listen_port"] == "6432"
    assert "host=postgres " in ini["databases"]["dagster"]
    assert "./pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro" in services["pgbouncer"]["volumes"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'pip install ".[neural,birefnet,scale]"' in dockerfile
    assert "COPY deploy/dagster.yaml deploy/celery.yaml deploy/workspace.yaml /opt/dagster/home/" in dockerfile


def chart_instance(values: dict) -> dict:
    """The dagster.yaml the Dagster chart's instance ConfigMap renders from `values`, for the keys
    these values use (templates/configmap-instance.yaml and helpers/instance/*.tpl of the chart)."""
    pg = values["postgresql"]
    assert not pg["enabled"], "these values use your own Postgres"
    pg_config = {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        "params": pg["postgresqlParams"], **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    launcher, logs, daemon = values["runLauncher"], values["computeLogManager"], values["dagsterDaemon"]
    assert launcher["type"] == "CustomRunLauncher" and logs["type"] == "CustomComputeLogManager"
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = {k: v for k, v in (coordinator["config"]["queuedRunCoordinator"] or {}).items() if v}
    instance = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        **{section: {"module": f"dagster_postgres.{module}", "class": cls, "config": pg_config}
           for section, module, cls in (("schedule_storage", "schedule_storage", "PostgresScheduleStorage"),
                                        ("run_storage", "run_storage", "PostgresRunStorage"),
                                        ("event_log_storage", "event_log", "PostgresEventLogStorage"))},
        "run_launcher": launcher["config"]["customRunLauncher"],
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                            **({"config": queued} if queued else {})},
        "compute_logs": logs["config"]["customComputeLogManager"],
        "python_logs": {"python_log_level": values["pythonLogs"]["pythonLogLevel"],
                        "managed_python_loggers": values["pythonLogs"]["managedPythonLoggers"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    assert not daemon["runMonitoring"]["enabled"] and not daemon["runRetries"]["enabled"], \
        "run monitoring and retries come from additionalInstanceConfig (the chart would render a second block)"
    overlap = set(instance) & set(values["additionalInstanceConfig"])
    assert not overlap, f"additionalInstanceConfig repeats {overlap}"
    return {**instance, **values["additionalInstanceConfig"]}


def test_helm_values_make_the_instance_of_dagster_yaml(env, tmp_path):
    from dagster_postgres import PostgresRunStorage

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    rendered = chart_instance(values)
    for section in POSTGRES_SECTIONS:
        assert check_postgres(rendered[section]["config"], PostgresRunStorage).startswith(
            "postgresql+psycopg2://dagster:pw@adgen-pgbouncer:6432/dagster")
    replicas = gpu_deployment()["spec"]["replicas"]
    with instance_without_postgres(rendered, tmp_path) as instance:
        limits = instance.get_concurrency_config()
        assert limits.run_queue_config.max_concurrent_runs == limits.pool_config.default_pool_limit == replicas
        assert type(instance.run_launcher).__module__ == "adgen_dagster.scale.launcher"
    cluster = load("dagster.yaml")
    for section in ("run_launcher", "run_monitoring", "run_retries", "compute_logs", "python_logs", "telemetry"):
        assert rendered[section] == cluster[section], section
    gpu_count = len(gpu_workers_in_compose())
    assert json.dumps(rendered["concurrency"]).replace(f": {replicas}", ": N") == \
        json.dumps(cluster["concurrency"]).replace(f": {gpu_count}", ": N")
    for image in (values["dagsterWebserver"]["image"], values["dagsterDaemon"]["image"],
                  values["dagster-user-deployments"]["deployments"][0]["image"]):
        assert f"{image['repository']}:{image['tag']}" == gpu_deployment()["spec"]["template"]["spec"]["containers"][0]["image"]


def manifests() -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "helm" / "gpu-workers.yaml").read_text()) if doc]


def gpu_deployment() -> dict:
    return next(d for d in manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == "adgen-gpu-worker")


def test_gpu_worker_manifests_parse_with_the_kubernetes_models():
    kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is in the test extra")
    api = kubernetes.client.ApiClient()

    class Response:  # before client 35, ApiClient.deserialize read the body of an HTTP response
        def __init__(self, doc):
            self.data = json.dumps(doc)

    def parse(doc):
        try:
            return api.deserialize(json.dumps(doc), f"V1{doc['kind']}", "application/json")
        except TypeError:
            return api.deserialize(Response(doc), f"V1{doc['kind']}")

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if v is not None}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return str(obj) if isinstance(obj, (int, float)) and not isinstance(obj, bool) else obj

    docs = manifests()
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} >= {
        ("Deployment", "adgen-gpu-worker"), ("Deployment", "adgen-cpu-worker"), ("ConfigMap", "adgen-celery"),
        ("ConfigMap", "adgen-env"), ("Deployment", "adgen-pgbouncer"), ("Service", "adgen-pgbouncer"),
        ("Deployment", "adgen-redis"), ("Service", "adgen-redis")}
    for doc in docs:
        model = parse(doc)
        back = api.sanitize_for_serialization(model)
        assert strip(back) == strip(doc), f"{doc['kind']} {doc['metadata']['name']}: a field the models do not know"

    spec = gpu_deployment()["spec"]
    pod = spec["template"]["spec"]
    [worker] = pod["containers"]
    assert worker["command"] == ["python", "-m", "adgen_dagster.scale.worker", "gpu", "0"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["terminationGracePeriodSeconds"] >= 1800
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    instance_volume = volumes[mounts["/opt/dagster/home/dagster.yaml"]["name"]]
    assert instance_volume["configMap"]["name"] == "dagster-instance"  # the chart's (release `dagster`)
    celery = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "adgen-celery")
    assert yaml.safe_load(celery["data"]["celery.yaml"]) == load("celery.yaml")
    env = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "adgen-env")["data"]
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert env["DAGSTER_PG_HOST"] == values["postgresql"]["postgresqlHost"]
    assert env["DAGSTER_PG_PORT"] == str(values["postgresql"]["service"]["port"])
    bouncer = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "adgen-pgbouncer")
    ours, theirs = configparser.ConfigParser(), configparser.ConfigParser()
    ours.read(DEPLOY / "pgbouncer.ini")
    theirs.read_string(bouncer["data"]["pgbouncer.ini"])
    assert dict(theirs["pgbouncer"]) == dict(ours["pgbouncer"]), "helm's pgbouncer.ini differs from deploy/pgbouncer.ini"


def test_make_demo_needs_none_of_it():
    """The local set-up stays as it was: the scale libraries are an extra that only `make test` installs."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scale = " ".join(project["optional-dependencies"]["scale"])
    for name in ("dagster-celery==0.29.27", "dagster-postgres==0.29.27", "celery[redis]", "psycopg2-binary"):
        assert name in scale
    assert not any("celery" in d or "postgres" in d for d in project["dependencies"])
    rules = {line.split(":")[0]: line for line in (REPO / "Makefile").read_text().splitlines() if ":" in line}
    for target in ("demo", "ui", "install", "$(VENV)/.installed"):
        assert "scale" not in rules[target], rules[target]
    assert "scale" in rules["test"]
