"""The GPU resource's host: LRU within a budget, memory really freed, the cross-process lock."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the neural backends need torch (pip install -e '.[neural]')")

from adgen_dagster.models.params import GpuSettings  # noqa: E402
from adgen_dagster.models.errors import ModelError  # noqa: E402
from adgen_dagster.models.gpu_lock import GpuLock  # noqa: E402
from adgen_dagster.models.host import ModelHost  # noqa: E402
from adgen_dagster.models.memory import model_bytes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def linear_mb(mb: int) -> torch.nn.Module:
    return torch.nn.Linear(mb * MB // 4 // 256, 256, bias=False)  # float32: mb MiB of weights


def test_model_bytes_counts_modules_pipelines_and_tuples():
    m = linear_mb(1)
    assert model_bytes(m) == MB
    pipe = type("Pipe", (), {"components": {"a": linear_mb(1), "b": linear_mb(2), "tokenizer": object()}})()
    assert model_bytes(pipe) == 3 * MB
    assert model_bytes((m, "processor")) == MB


def test_lru_eviction_under_a_small_budget_frees_the_memory(tmp_path):
    host = ModelHost(GpuSettings(memory_budget_gb=2.5 * MB / 1024**3, lock_dir=str(tmp_path)))
    refs = {}

    def loader(name):
        def load():
            m = linear_mb(1)
            refs[name] = weakref.ref(m)
            return m
        return load

    host.model("a", loader("a"))
    host.model("b", loader("b"))
    assert list(host.loaded()) == ["a", "b"]
    host.model("a", loader("a"))  # a used again: b is now the least recently used
    host.model("c", loader("c"))
    assert list(host.loaded()) == ["a", "c"] and host.loads == 3
    gc.collect()
    assert refs["b"]() is None, "an unloaded model must not stay referenced"
    assert refs["a"]() is not None and refs["c"]() is not None
    host.clear()
    gc.collect()
    assert host.loaded() == {} and all(r() is None for r in refs.values())


def test_room_is_made_before_loading_when_the_size_is_known(tmp_path):
    host = ModelHost(GpuSettings(memory_budget_gb=2.5 * MB / 1024**3, lock_dir=str(tmp_path)))
    host.model("a", lambda: linear_mb(1))
    host.model("b", lambda: linear_mb(1))
    seen = []

    def load():
        seen.append(list(host.loaded()))  # what is still loaded while c loads
        return linear_mb(1)

    host.model("c", load, size_hint=int(1.5 * MB))
    assert seen == [["b"]] and list(host.loaded()) == ["b", "c"]


def test_a_model_larger_than_the_budget_is_kept_alone(tmp_path):
    host = ModelHost(GpuSettings(memory_budget_gb=1.5 * MB / 1024**3, lock_dir=str(tmp_path)))
    host.model("small", lambda: linear_mb(1))
    big = host.model("big", lambda: linear_mb(2))
    assert list(host.loaded()) == ["big"] and big is host.model("big", lambda: pytest.fail("loaded twice"))


def test_device_errors_name_the_setting(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="ADGEN_GPU__DEVICE asks for cuda but this machine has no usable CUDA GPU"):
        ModelHost(GpuSettings(device="cuda")).device
    with pytest.raises(ModelError, match="ADGEN_GPU__DEVICE='tpu7' is not a device"):
        ModelHost(GpuSettings(device="tpu7")).device
    host = ModelHost(GpuSettings(lock_dir=str(tmp_path)))
    assert str(host.device) == "cpu" and host.dtype == torch.float32
    with pytest.raises(ModelError, match="ADGEN_GPU__ALLOW_CPU=true.*ADGEN_SEGMENTER"):
        host.require_accelerator("birefnet", "ADGEN_SEGMENTER")
    ModelHost(GpuSettings(allow_cpu=True)).require_accelerator("birefnet", "ADGEN_SEGMENTER")


def test_out_of_memory_really_frees_a_model_the_failing_frame_held(tmp_path):
    from adgen_dagster.models.memory import free_after_oom

    host = ModelHost(GpuSettings(lock_dir=str(tmp_path)))
    refs = []

    def backend_call():
        model = host.model("m", lambda: linear_mb(1))  # a local of the failing frame, as in a real backend
        refs.append(weakref.ref(model))
        activations = model(torch.ones(1, model.in_features))  # noqa: F841 - held by the frame too
        with host.inference("denoising"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    try:
        backend_call()
    except ModelError as exc:
        assert exc.oom and host.loaded() == {}
        error = exc
    gc.collect()
    assert refs[0]() is not None, "the traceback still holds the model (why free_after_oom exists)"
    free_after_oom(error)
    assert refs[0]() is None, "the model outlived the out-of-memory error"


def test_out_of_memory_becomes_one_clear_error_and_frees_models(tmp_path):
    host = ModelHost(GpuSettings(lock_dir=str(tmp_path)))
    host.model("a", lambda: linear_mb(1))
    with pytest.raises(ModelError, match="out of memory on cpu while denoising.*ADGEN_GPU__MEMORY_BUDGET_GB"):
        with host.inference("denoising"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert host.loaded() == {}
    with pytest.raises(ZeroDivisionError):  # other errors pass through untouched
        with host.inference("x"):
            1 / 0
    with pytest.raises(ModelError, match="while loading huge"):
        host.model("huge", lambda: (_ for _ in ()).throw(RuntimeError("CUDA error: out of memory")), "huge")


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from adgen_dagster.models.gpu_lock import GpuLock
    lock = GpuLock(Path({path!r}), timeout_s=60)
    with lock:
        Path({ready!r}).write_text("held")
        {body}
""")


def start_holder(tmp_path, body="time.sleep(60)", name="holder"):
    lock, ready = tmp_path / "gpu.lock", tmp_path / f"{name}.ready"
    code = HOLDER.format(repo=str(REPO), path=str(lock), ready=str(ready), body=body)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "holder died"
        assert time.monotonic() < deadline, "holder never took the lock"
        time.sleep(0.02)
    return proc, lock


def test_lock_excludes_another_process_and_dies_with_its_holder(tmp_path):
    proc, path = start_holder(tmp_path)
    try:
        with pytest.raises(ModelError, match=rf"GPU lock .* held by pid {proc.pid}.*ADGEN_GPU__LOCK_TIMEOUT_S"):
            with GpuLock(path, timeout_s=0.3):
                pass
        os.killpg(proc.pid, signal.SIGKILL)  # the holder is killed while holding the lock
        proc.wait(10)
        t0 = time.monotonic()
        with GpuLock(path, timeout_s=5) as lock:
            assert f"pid {os.getpid()}" in lock.holder()
        assert time.monotonic() - t0 < 1.0, "the lock outlived its killed holder"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_lock_serialises_two_processes(tmp_path):
    log = tmp_path / "log"
    body = f"time.sleep(0.4); open({str(log)!r}, 'a').write('holder-done ')"
    proc, path = start_holder(tmp_path, body=body)
    with GpuLock(path, timeout_s=30):  # waits for the other process to finish, then has the GPU alone
        open(log, "a").write("main ")
    proc.wait(10)
    assert log.read_text().split() == ["holder-done", "main"]


def test_lock_is_reentrant_within_a_process(tmp_path):
    lock = GpuLock(tmp_path / "l", timeout_s=1)
    with lock:
        with lock:
            pass
        assert lock.holder() == f"pid {os.getpid()}"


def test_lock_serialises_threads_of_one_process_without_the_file_timeout(tmp_path):
    """Steps of one run share the host: a second thread queues behind the first (however long it
    holds the GPU), then takes the file lock itself."""
    import threading

    lock = GpuLock(tmp_path / "l", timeout_s=0.1)
    order, entered = [], threading.Event()

    def first():
        with lock:
            entered.set()
            time.sleep(0.4)  # longer than timeout_s: the other thread must still not fail
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(10)
    with lock:
        order.append("second in")
        assert lock.holder() == f"pid {os.getpid()}"
    t.join(10)
    assert order == ["first done", "second in"]
