"""One host per process for the neural models: device, precision, memory budget, GPU lock.

Why this exists: the reference system loaded one model at a time onto a 24 GB card and
crashed about 5% of the time. Here every model a backend needs is loaded through
`ModelHost.model()`, which

- serialises loading and inference across steps, runs and processes with a lock file
  (`gpu_lock`: an flock the kernel drops when the holder dies, so a killed run never
  leaves the GPU locked);
- keeps loaded models in the process within a memory budget, unloading the least
  recently used first and really returning the memory (no references kept,
  `memory.release_memory`), so a run over many products loads each
  model once;
- turns an out-of-memory error into one `ModelError` that names the settings to change,
  after freeing what it can, so only that product's step fails.

Dagster-free (the command line uses it too); torch is imported only when a model is used.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from adgen_dagster.models.errors import ModelError, import_torch, is_oom
from adgen_dagster.models.gpu_lock import GpuLock
from adgen_dagster.models.memory import model_bytes, release_memory
from adgen_dagster.models.params import GpuSettings

log = logging.getLogger("adgen_dagster.models")
M = TypeVar("M")


@dataclass
class _Loaded:
    model: Any
    nbytes: int
    load_ms: float


class ModelHost:
    """Loaded models, the device they run on and the lock around them (one per process)."""

    def __init__(self, settings: GpuSettings | None = None):
        self.settings = settings or GpuSettings()
        self._models: "OrderedDict[str, _Loaded]" = OrderedDict()
        self._device = None
        self._lock: GpuLock | None = None
        self._mutex = threading.RLock()
        self.loads = 0  # models loaded by this host (a test and the metadata read it)

    # --- device and precision ------------------------------------------------------------

    @property
    def device(self):
        if self._device is None:
            self._device = self._resolve_device()
        return self._device

    def _resolve_device(self):
        torch = import_torch("neural", "ADGEN_GPU__DEVICE")
        want = self.settings.device.strip().lower()
        if want == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", want):
            raise ModelError(f"ADGEN_GPU__DEVICE={self.settings.device!r} is not a device; use auto, cuda, cuda:N, mps or cpu")
        dev = torch.device(want)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ModelError("ADGEN_GPU__DEVICE asks for cuda but this machine has no usable CUDA GPU (or torch is a "
                                 "CPU build); set ADGEN_GPU__DEVICE=auto or cpu")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise ModelError(f"ADGEN_GPU__DEVICE={want} but only {torch.cuda.device_count()} CUDA device(s) exist")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelError("ADGEN_GPU__DEVICE asks for mps but it is not available; set ADGEN_GPU__DEVICE=auto or cpu")
        return dev

    def require_accelerator(self, backend: str, setting: str) -> None:
        """Full-size models on a CPU take hours: refuse unless the operator said yes."""
        if self.device.type == "cpu" and not self.settings.allow_cpu:
            raise ModelError(
                f"the {backend} backend found no GPU (cuda or mps); set ADGEN_GPU__ALLOW_CPU=true to run it on the CPU "
                f"(slow), point ADGEN_GPU__DEVICE at a GPU, or set {setting} to the CPU backend"
            )

    @property
    def dtype(self):
        torch = import_torch("neural", "ADGEN_GPU__DTYPE")
        if self.settings.dtype != "auto":
            return getattr(torch, self.settings.dtype)
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device.type == "mps":
            return torch.float16
        return torch.float32

    def budget_bytes(self) -> int:
        if self.settings.memory_budget_gb > 0:
            return int(self.settings.memory_budget_gb * 1024**3)
        if self.device.type == "cuda":
            import torch

            return int(torch.cuda.get_device_properties(self.device).total_memory * 0.9)
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            return 16 * 1024**3

    # --- the lock ----------------------------------------------------------------------------

    @property
    def lock(self) -> GpuLock:
        if self._lock is None:
            folder = Path(self.settings.lock_dir or tempfile.gettempdir())
            slug = str(self.device).replace(":", "-")
            if self.device.type == "cuda":  # one lock per physical GPU, however it is named or numbered
                import torch

                uuid = getattr(torch.cuda.get_device_properties(self.device), "uuid", None)
                slug = f"cuda-{uuid}" if uuid else slug
            self._lock = GpuLock(folder / f"adgen-gpu-{slug}.lock", self.settings.lock_timeout_s)
        return self._lock

    # --- models ------------------------------------------------------------------------------

    def model(self, key: str, load: Callable[[], M], what: str = "", size_hint: int = 0) -> M:
        """The model under `key`, loaded by `load()` the first time (under the lock).

        `size_hint` (bytes, e.g. the weight files' size) makes room before loading: least
        recently used models are unloaded until it fits the budget and, on a GPU, the free
        memory. After loading, the same with the real size. A model larger than the whole
        budget is kept alone (with a warning) rather than refused: it is what the step needs.
        """
        with self._mutex:
            hit = self._models.get(key)
            if hit is not None:
                self._models.move_to_end(key)
                return hit.model
            if size_hint:
                self._make_room(size_hint)
            with self.lock, self.oom_guard(f"loading {what or key}"):
                t0 = time.perf_counter()
                model = load()
                nbytes = model_bytes(model)
                load_ms = round((time.perf_counter() - t0) * 1000, 1)
            self.loads += 1
            self._models[key] = _Loaded(model, nbytes, load_ms)
            del model
            self._fit_budget(keep=key)
            log.info("loaded %s in %.0f ms (%.1f MB) on %s", what or key, load_ms, nbytes / 1e6, self.device)
            return self._models[key].model

    def put(self, key: str, model: Any, load_ms: float = 0.0) -> None:
        """Adopt a model built elsewhere under `key` (benchmarks with random full-size weights).

        A backend asking for `key` then uses it as if it had loaded it; the budget applies.
        """
        with self._mutex:
            self.unload(key)
            self._models[key] = _Loaded(model, model_bytes(model), load_ms)
            self._fit_budget(keep=key)

    def load_ms(self, key: str) -> float | None:
        hit = self._models.get(key)
        return hit.load_ms if hit else None

    def loaded(self) -> dict[str, int]:
        """Loaded model keys and their bytes, least recently used first."""
        return {k: v.nbytes for k, v in self._models.items()}

    def _fit_budget(self, keep: str) -> None:
        budget = self.budget_bytes()
        while sum(m.nbytes for m in self._models.values()) > budget and len(self._models) > 1:
            oldest = next(k for k in self._models if k != keep)
            self.unload(oldest)
        if self._models[keep].nbytes > budget:
            log.warning("%s needs %.1f GB, more than ADGEN_GPU__MEMORY_BUDGET_GB allows (%.1f GB); kept alone",
                        keep, self._models[keep].nbytes / 1024**3, budget / 1024**3)

    def _make_room(self, nbytes: int) -> None:
        budget = self.budget_bytes()
        while self._models and sum(m.nbytes for m in self._models.values()) + nbytes > budget:
            self.unload(next(iter(self._models)))
        if self.device.type == "cuda":
            import torch

            while self._models and torch.cuda.mem_get_info(self.device)[0] < nbytes * 1.1:
                self.unload(next(iter(self._models)))

    def unload(self, key: str) -> None:
        entry = self._models.pop(key, None)
        if entry is None:
            return
        log.info("unloaded %s (%.1f MB)", key, entry.nbytes / 1e6)
        del entry
        release_memory()

    def clear(self) -> None:
        for key in list(self._models):
            self.unload(key)
        release_memory()

    # --- inference ---------------------------------------------------------------------------

    @contextmanager
    def inference(self, what: str) -> Iterator[dict]:
        """Hold the lock and turn OOM into a `ModelError`; yields a dict that gets `inference_ms`."""
        timing: dict[str, float] = {}
        with self.lock, self.oom_guard(what):
            timing["lock_wait_ms"] = round(self.lock.waited_s * 1000, 1)
            t0 = time.perf_counter()
            try:
                import torch

                with torch.inference_mode():
                    yield timing
            finally:
                timing["inference_ms"] = round((time.perf_counter() - t0) * 1000, 1)

    @contextmanager
    def oom_guard(self, what: str) -> Iterator[None]:
        """Out of memory -> drop every loaded model and raise one `ModelError` (with `.oom` set).

        The memory itself can only be returned once the error has left the frames that
        still hold the model and its activations: whoever catches it calls `free_after_oom`
        (the assets do, in `failures_named`).
        """
        try:
            yield
        except Exception as exc:
            if not is_oom(exc):
                raise
            self._models.clear()
            error = ModelError(
                f"out of memory on {self.device} while {what}; the loaded models were unloaded and the memory freed. "
                f"Lower ADGEN_GPU__MEMORY_BUDGET_GB, the batch size (ADGEN_BIREFNET__BATCH_SIZE) or the image size "
                f"(ADGEN_FLUX__WIDTH/HEIGHT, ADGEN_QWEN2_VL__IMAGE_SIZE), turn on ADGEN_FLUX__CPU_OFFLOAD, or set "
                f"ADGEN_GPU__DEVICE to a larger GPU"
            )
            error.oom = True
            raise error from None

    def describe(self) -> dict:
        return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "models_loaded": list(self._models)}


_HOSTS: dict[str, ModelHost] = {}
_HOSTS_LOCK = threading.Lock()


def host_for(settings: GpuSettings) -> ModelHost:
    """The process-wide host for these settings, so models stay loaded across steps and runs."""
    key = settings.model_dump_json()
    with _HOSTS_LOCK:
        if key not in _HOSTS:
            _HOSTS[key] = ModelHost(settings)
        return _HOSTS[key]
