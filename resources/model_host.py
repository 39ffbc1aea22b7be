"""Moved to adgen_dagster.models (host, errors, memory, gpu_lock); kept for assets_defs/common.py, which issue 13 edits."""

from adgen_dagster.models.errors import ModelError  # noqa: F401 - imported by assets_defs/common.py
from adgen_dagster.models.memory import free_after_oom  # noqa: F401 - imported by assets_defs/common.py
