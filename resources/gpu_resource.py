"""The Dagster face of the GPU: `GpuResource` hands assets the process's `ModelHost`.

Its fields are the `ADGEN_GPU__*` settings, shown in the Launchpad. The host (loaded
models, lock, budget) lives for the whole process, not per step, so a run that
materializes segmentation, background and analysis for many products loads each model
once. The assets that can use a model also sit in the `gpu` concurrency pool (limit 1 in
dagster.yaml), which keeps Dagster from scheduling two of them at once; the lock inside
the host covers what the pool cannot see (the command line, other code locations).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from adgen_dagster.models.params import GpuSettings
from adgen_dagster.settings import get_settings
from adgen_dagster.models.host import ModelHost, host_for


def _default(name: str):
    return Field(default_factory=lambda: getattr(get_settings().gpu, name), description=GpuSettings.model_fields[name].description)


class GpuResource(dg.ConfigurableResource):
    """Device, precision, memory budget and lock for the neural backends."""

    device: str = _default("device")
    dtype: str = _default("dtype")
    memory_budget_gb: float = _default("memory_budget_gb")
    allow_cpu: bool = _default("allow_cpu")
    lock_dir: str = _default("lock_dir")
    lock_timeout_s: float = _default("lock_timeout_s")

    def settings(self) -> GpuSettings:
        return GpuSettings.model_validate({n: getattr(self, n) for n in GpuSettings.model_fields})

    def get_host(self) -> ModelHost:
        return host_for(self.settings())
