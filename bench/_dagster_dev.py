"""What the UI-path benchmarks share: `dg dev` (webserver + daemon) with the shipped dagster.yaml,
a GraphQL client, photos to run, and `adgen run` on the same photos as the baseline.

`DagsterDev` starts `dg dev` the way `make ui` does (in a temporary DAGSTER_HOME holding a copy
of the repository's dagster.yaml, a temporary local store), on a free port of 127.0.0.1, in its
own session, and stops it (and only it) by process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _util import REPO

DG = Path(sys.executable).with_name("dg")
ADGEN = Path(sys.executable).with_name("adgen")
ASSETS = ["product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"]

RUNS = """query($tag: String!, $value: String!) { runsOrError(filter: {tags: [{key: $tag, value: $value}]}) {
  ... on Runs { results { runId status startTime endTime tags { key value } } } } }"""
ALL_RUNS = """query { runsOrError { ... on Runs { results { runId status startTime endTime tags { key value } } } } }"""
WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename
  ... on PythonError { message } ... on RepositoryLocation { repositories { name } } } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.1f} (1 min) {five:.1f} (5 min)"


def write_photos(folder: Path, n: int) -> list[Path]:
    """`n` distinct 1024-px product photos (the samples, mirrored and flipped copies)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from adgen_run import uploads_1024

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in uploads_1024(n):
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def adgen_run(photos: Path, out: Path) -> float:
    """Wall seconds of `adgen run` (a new process, as a user runs it) over every photo in `photos`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADGEN_")}
    t0 = time.perf_counter()
    proc = subprocess.run([str(ADGEN), "run", str(photos), "--out", str(out), "-q"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"adgen run failed:\n{proc.stderr[-3000:]}")
    return wall


class DagsterDev:
    def __init__(self, tmp: Path, env: dict[str, str] | None = None, pool_limit: int | None = None):
        self.home, self.store_root, self.log = tmp / "home", tmp / "store", tmp / "dg_dev.log"
        self.home.mkdir(parents=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        if pool_limit is not None:  # an experiment: the shipped file with another pool limit
            import yaml

            config = yaml.safe_load((REPO / "dagster.yaml").read_text())
            config["concurrency"]["pools"]["default_limit"] = pool_limit
            (self.home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("ADGEN_")},
                    "DAGSTER_HOME": str(self.home), "ADGEN_STORE__ROOT": str(self.store_root), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "DagsterDev":
        out = open(self.log, "wb")
        self.proc = subprocess.Popen([str(DG), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                                      "-p", str(self.port)], cwd=self.home, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.location = self.wait("the code location", self._loaded, 300)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def gql(self, query: str, **variables) -> dict:
        req = urllib.request.Request(self.url, data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def wait(self, what: str, fn, timeout: float, every: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"dg dev exited waiting for {what}:\n{self.log.read_text()[-3000:]}")
            try:
                got = fn()
                if got:
                    return got
            except OSError:
                pass
            time.sleep(every)
        raise SystemExit(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")

    def _loaded(self):
        entries = self.gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        loc = entries[0]["locationOrLoadError"] if entries else None
        if loc and loc["__typename"] == "PythonError":
            raise SystemExit(f"code location failed to load: {loc['message']}")
        if loc and loc["__typename"] == "RepositoryLocation":
            return {"repositoryLocationName": entries[0]["name"], "repositoryName": loc["repositories"][0]["name"]}
        return None

    def runs(self, tag: str | None = None, value: str | None = None) -> list[dict]:
        data = self.gql(RUNS, tag=tag, value=value) if tag else self.gql(ALL_RUNS)
        return data["runsOrError"]["results"]


def digests(root: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def same_outputs(adgen_out: Path, store_products: Path) -> int:
    """Every file `adgen run` wrote is in the store with the same bytes; returns the count."""
    n = 0
    for pid_dir in sorted(p for p in adgen_out.iterdir() if p.is_dir()):
        ours, theirs = digests(pid_dir), digests(store_products / pid_dir.name)
        missing = {k for k in ours if theirs.get(k) != ours[k]}
        if missing:
            raise SystemExit(f"{pid_dir.name}: files differ from adgen run's: {sorted(missing)[:5]}")
        n += len(ours)
    return n
