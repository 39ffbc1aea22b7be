"""Postgres, pgbouncer and Redis on 127.0.0.1 for the scale-out test and benchmark.

Each server gets a free port and a folder of its own, starts in its own session and is
stopped by its PID (never by name: other people's servers run on this machine too).
Postgres and pgbouncer refuse to run as root, and CI runs as root: there both run as an
unprivileged account (`postgres`, which Debian's package creates, else `nobody`) through
`Popen(user=...)`, in a folder that account owns. pgbouncer's settings are the ones in
deploy/pgbouncer.ini with only the addresses, paths and authentication changed.
"""

from __future__ import annotations

import configparser
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USER = "dagster"
DB = "dagster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir() -> Path | None:
    """Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin (newest wins)."""
    if os.environ.get("ADGEN_PG_BINDIR"):
        return Path(os.environ["ADGEN_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("postgres")
    return Path(which).parent if which else None


def missing_binaries() -> list[str]:
    bindir = postgres_bindir()
    missing = [] if bindir and (bindir / "initdb").exists() else ["postgresql (initdb, postgres)"]
    missing += [name for name in ("pgbouncer", "redis-server") if shutil.which(name) is None]
    return missing


def _account() -> dict:
    """Popen keywords that drop root to an unprivileged account; {} when not root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def _own_folder(prefix: str) -> Path:
    """A new folder the server's account owns (under /tmp: pytest's own folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    account = _account()
    if account:
        os.chown(folder, account["user"], account["group"])
    return folder


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s ({last!r}):\n{log.read_text(errors='replace')[-3000:]}")


class Server:
    """One server process in its own session, stopped by PID."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.folder: Path | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError


class Postgres(Server):
    """A throwaway cluster with database `dagster` owned by user `dagster` (trust auth on 127.0.0.1).

    `durable=False` turns fsync off (the tests); the benchmark keeps a real server's settings.
    """

    name = "postgres"

    def __init__(self, durable: bool = False) -> None:
        super().__init__()
        self.durable = durable

    def start(self) -> "Postgres":
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.folder = _own_folder("adgen-pg-")
        data, log = self.folder / "data", self.folder / "postgres.log"
        account = _account()
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                        "--no-sync", "--no-instructions"],
                       cwd=self.folder, check=True, capture_output=True, **account)
        self.port = free_port()
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
                    "-c", "max_connections=200"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(log, "wb") as out:
            if account:
                os.chown(log, account["user"], account["group"])
            self.proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), *settings],
                                         cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         **account)
        _wait("postgres", lambda: self.query("select 1", db="postgres"), self.proc, log)
        self.query(f"create database {DB}", db="postgres")
        return self

    def query(self, sql: str, db: str = DB, port: int | None = None):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port or self.port, user=USER, dbname=db, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else True
        finally:
            conn.close()


class PgBouncer(Server):
    """deploy/pgbouncer.ini in front of `postgres`, on its own port, trusting the local user."""

    name = "pgbouncer"

    def __init__(self, postgres: Postgres, ini: Path = REPO / "deploy" / "pgbouncer.ini") -> None:
        super().__init__()
        self.postgres = postgres
        self.ini = ini

    def start(self) -> "PgBouncer":
        binary = shutil.which("pgbouncer")
        if binary is None:
            raise RuntimeError("pgbouncer not found (apt-get install pgbouncer)")
        self.folder = _own_folder("adgen-pgbouncer-")
        self.port = free_port()
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(self.ini)
        cfg["databases"] = {DB: f"host=127.0.0.1 port={self.postgres.port} dbname={DB} user={USER}"}
        cfg["pgbouncer"].update({
            "listen_addr": "127.0.0.1", "listen_port": str(self.port), "unix_socket_dir": "",
            "auth_type": "trust", "auth_file": str(self.folder / "userlist.txt"),
            "logfile": str(self.folder / "pgbouncer.log"), "pidfile": "",
        })
        (self.folder / "userlist.txt").write_text(f'"{USER}" ""\n')
        ini = self.folder / "pgbouncer.ini"
        with open(ini, "w") as fh:
            cfg.write(fh)
        account = _account()
        for path in (ini, self.folder / "userlist.txt"):
            if account:
                os.chown(path, account["user"], account["group"])
        log = self.folder / "pgbouncer.out"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([binary, str(ini)], cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **account)
        _wait("pgbouncer", lambda: self.postgres.query("select 1", port=self.port), self.proc, log)
        return self


class Redis(Server):
    """redis-server with no persistence, on 127.0.0.1 only."""

    name = "redis"

    def start(self) -> "Redis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        self.folder = Path(tempfile.mkdtemp(prefix="adgen-redis-"))
        self.port = free_port()
        log = self.folder / "redis.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                          "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no"],
                                         cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait("redis", self.ping, self.proc, log)
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"
