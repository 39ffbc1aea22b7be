"""The Dagster resource that hands assets an `ObjectStore`."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from adgen_dagster.settings import get_settings
from resources.cache import ResultCache
from resources.object_store import LocalObjectStore, ObjectStore


class StoreResource(dg.ConfigurableResource):
    """Where inputs are read and outputs written. `kind` switches the backend."""

    kind: Literal["local"] = Field(default_factory=lambda: get_settings().store.kind)
    root: str = Field(default_factory=lambda: get_settings().store.root, description="Local store directory.")
    cache: bool = Field(
        default_factory=lambda: get_settings().store.cache,
        description="Reuse results whose stage, settings and inputs are unchanged (content-addressed cache).",
    )

    def get_store(self) -> ObjectStore:
        return LocalObjectStore(self.root)

    def get_cache(self) -> ResultCache:
        return ResultCache(self.get_store(), enabled=self.cache)
