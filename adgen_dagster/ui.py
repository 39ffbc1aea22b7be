"""`make ui`: the Dagster UI and daemon (`dg dev`) on the instance `make demo` uses.

What this adds to a bare `dg dev -w workspace.yaml`:
- it stops cleanly on Ctrl-C and on SIGTERM, also when started without a terminal (`make ui &`
  in a script): a shell starts such a background job with SIGINT ignored, and Dagster's
  dev command maps SIGTERM to the SIGINT handler, so both would be ignored and the
  webserver and daemon left running. The dispositions are reset here before `dg` starts;
  `dg dev` then shuts its webserver, daemon and code servers down on either signal;
- it runs in `$DAGSTER_HOME`, where `make home` put the repository's `dagster.yaml`: run from the
  repository, Dagster would see the `dagster.yaml` there and warn that it "will not be used"
  (true of that file: the copy in `$DAGSTER_HOME` is the one in use);
- the local store keeps its place: a relative `ADGEN_STORE__ROOT` (default `.adgen`) is made
  absolute against the folder `make ui` was started in, as for `make demo`.

    python -m adgen_dagster.ui [--host 127.0.0.1] [--port 3000] [--workspace workspace.yaml]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path


def dg_command() -> str:
    found = Path(sys.executable).with_name("dg")
    if found.exists():
        return str(found)
    other = shutil.which("dg")
    if other is None:
        raise SystemExit("make ui: the `dg` command is not installed; run `make install` "
                         "(or `pip install dagster-dg-cli`)")
    return other


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m adgen_dagster.ui", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="3000")
    parser.add_argument("--workspace", default="workspace.yaml", help="the workspace file (default: ./workspace.yaml)")
    args = parser.parse_args(argv)

    workspace = Path(args.workspace).resolve()
    if not workspace.is_file():
        raise SystemExit(f"make ui: no workspace file {workspace}; run it from the repository")
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").is_file():
        raise SystemExit(f"make ui: {home}/dagster.yaml is missing; `make home` copies the repository's")
    root = os.environ.get("ADGEN_STORE__ROOT", ".adgen")
    os.environ["ADGEN_STORE__ROOT"] = str(Path(root).expanduser().resolve())

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # an ignored signal would stay ignored across exec
    cmd = [dg_command(), "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    print(f"make ui: {' '.join(cmd)} (in {home}); http://{args.host}:{args.port}", flush=True)
    os.chdir(home)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
