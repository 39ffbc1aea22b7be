"""`make ui` starts `dg dev` without misleading warnings and stops cleanly on Ctrl-C and SIGTERM.

Two ways a user stops it:
- a script that started it in the background (`make ui &`, so without a terminal: the shell
  starts it with SIGINT ignored) and later sends SIGTERM to make;
- Ctrl-C in a terminal, which sends SIGINT to the whole foreground process group.
Either way every process it started (make, dg, webserver, daemon, code servers) is gone
within a minute and the log says Dagster shut its services down.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_e2e_dagster_dev import free_port

pytestmark = pytest.mark.skipif(shutil.which("make") is None or not Path(sys.executable).with_name("dg").exists(),
                                reason="needs make and the dg command (dagster-dg-cli)")


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError, FileNotFoundError, IndexError):
                continue
    return pids


def _as_from_a_fresh_shell() -> None:
    """Default SIGINT/SIGTERM in the child, as a user's shell or script has them: an ignored signal
    is inherited across fork and exec, and a test run may have left one ignored in this worker
    (Dagster maps SIGTERM to whatever SIGINT is), which would make `make` ignore the SIGTERM."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(tmp_path: Path, in_background_script: bool) -> tuple[subprocess.Popen, int, Path, int]:
    port, log = free_port(), tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADGEN_", "MAKE", "MFLAGS"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), ADGEN_STORE__ROOT=str(tmp_path / "store"),
               ADGEN_SENSOR__RUNNING="false", PYTHONUNBUFFERED="1")
    venv = Path(sys.executable).parent.parent
    make = ["make", "-o", f"{venv}/.installed", f"VENV={venv}", "ui", f"UI_PORT={port}"]
    if in_background_script:  # as `make ui &` in a script: the shell leaves SIGINT ignored for it
        cmd = ["bash", "-c", f"{' '.join(make)} > {log} 2>&1 & echo $! > {tmp_path / 'make.pid'}; wait"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=_as_from_a_fresh_shell)
    else:
        with open(log, "wb") as out:
            proc = subprocess.Popen(make, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_as_from_a_fresh_shell)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None and not in_background_script:
            pytest.fail(f"make ui exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the UI did not come up:\n{log.read_text()[-3000:]}")
    make_pid = int((tmp_path / "make.pid").read_text()) if in_background_script else proc.pid
    return proc, make_pid, log, port


def _ignored_signals(pid: int) -> str:
    try:
        line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return "?"
    mask = int(line.split()[1], 16)
    return ",".join(signal.Signals(n).name for n in range(1, 32) if mask >> (n - 1) & 1 and n in signal.valid_signals()) or "-"


def wait_all_gone(proc: subprocess.Popen, log: Path, timeout: float = 90) -> float:
    sid = proc.pid
    t0 = time.monotonic()
    while proc.poll() is None or session_processes(sid):
        if time.monotonic() - t0 > timeout:
            left = session_processes(sid)
            ignored = {pid: _ignored_signals(pid) for pid in left}
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"still running {timeout:.0f} s after the signal: {left} (signals ignored: {ignored})\n"
                        f"{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return time.monotonic() - t0


def check_log(log: Path) -> None:
    text = log.read_text()
    assert "dg dev -w" in text and "Serving dagster-webserver" in text
    assert "SupersessionWarning" not in text and "will not be used" not in text, text[-3000:]
    assert "Dagster services shut down" in text, text[-3000:]


def test_sigterm_from_a_script_stops_make_ui_started_in_the_background(tmp_path):
    proc, make_pid, log, _ = start(tmp_path, in_background_script=True)
    os.kill(make_pid, signal.SIGTERM)  # what `kill $!` does in the script
    took = wait_all_gone(proc, log)
    print(f"stopped {took:.1f} s after SIGTERM")
    check_log(log)


def test_ctrl_c_stops_make_ui(tmp_path):
    proc, _, log, _ = start(tmp_path, in_background_script=False)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: SIGINT to the foreground process group
    took = wait_all_gone(proc, log)
    print(f"stopped {took:.1f} s after Ctrl-C")
    check_log(log)
