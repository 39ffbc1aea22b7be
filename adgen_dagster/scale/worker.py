"""Start one Celery worker of a multi-machine deployment.

    python -m adgen_dagster.scale.worker gpu 0       # the worker for GPU 0 of this machine (queue gpu)
    python -m adgen_dagster.scale.worker gpu 1       # ... one per GPU
    python -m adgen_dagster.scale.worker cpu 4       # a CPU-only machine: queue cpu, 4 runs at once

It is the worker `dagster-celery worker start -A dagster_celery.app -y celery.yaml` starts
(dagster-celery writes its config module from `celery.yaml` itself), with what a GPU
deployment needs:

- one worker per GPU: `gpu N` sets CUDA_VISIBLE_DEVICES=N, so the process, and the model
  host in it, sees that GPU alone; it is named gpuN@<host>;
- concurrency 1 on a GPU: the run executes inside the worker's one pool process, whose
  model host keeps the models loaded from run to run (never --max-tasks-per-child, which
  would start a new process and reload them);
- Celery replaces this process (exec) instead of running under dagster-celery's wrapper:
  a deploy's SIGTERM then reaches Celery, which finishes the run in progress and exits
  (a warm shutdown). A signal to the wrapper would end it and leave Celery behind, or,
  in a container, killed with the run half done.

The config file is `--config`, else $ADGEN_CELERY_CONFIG, else $DAGSTER_HOME/celery.yaml
(deploy/celery.yaml). DAGSTER_HOME must hold the cluster's dagster.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def celery_command(queue: str, index_or_concurrency: int, name: str | None = None, loglevel: str = "INFO",
                   extra: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The Celery command line and the environment changes for this worker."""
    env: dict[str, str] = {}
    if queue == "gpu":
        env["CUDA_VISIBLE_DEVICES"] = str(index_or_concurrency)
        concurrency, default_name = 1, f"gpu{index_or_concurrency}@%h"
    else:
        concurrency, default_name = max(1, index_or_concurrency), "cpu@%h"
    cmd = [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "--prefetch-multiplier=1",
           "--loglevel", loglevel, "-Q", queue, "-n", name or default_name, "--concurrency", str(concurrency),
           *(extra or [])]
    return cmd, env


def config_module_dir(config_yaml: str) -> str:
    """dagster-celery's own step: validate celery.yaml and write it as the `dagster_celery_config` module."""
    from dagster_celery.cli import get_config_dir

    return get_config_dir(config_yaml)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m adgen_dagster.scale.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", choices=["gpu", "cpu"], help="gpu: one worker per GPU; cpu: a CPU-only machine")
    parser.add_argument("n", type=int, nargs="?", default=None,
                        help="gpu: the GPU's index on this machine; cpu: runs at once (default 1)")
    parser.add_argument("--config", default=None, help="celery.yaml (default $ADGEN_CELERY_CONFIG or $DAGSTER_HOME/celery.yaml)")
    parser.add_argument("--name", default=None, help="worker name (default gpuN@<host> or cpu@<host>)")
    parser.add_argument("--loglevel", default="INFO")
    args, extra = parser.parse_known_args(argv)
    if args.queue == "gpu" and args.n is None:
        parser.error("gpu needs the GPU's index: python -m adgen_dagster.scale.worker gpu 0")
    config = args.config or os.environ.get("ADGEN_CELERY_CONFIG") or str(Path(os.environ.get("DAGSTER_HOME", ".")) / "celery.yaml")
    if not Path(config).is_file():
        parser.error(f"no Celery config at {config}: pass --config deploy/celery.yaml or set ADGEN_CELERY_CONFIG")
    cmd, env_changes = celery_command(args.queue, 1 if args.n is None else args.n, args.name, args.loglevel, extra)
    env = {**os.environ, **env_changes}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (config_module_dir(config), env.get("PYTHONPATH", "")) if p)
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
