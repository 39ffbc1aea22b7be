"""Backends by name: the one place a setting like `ADGEN_SEGMENTER=birefnet` resolves.

Each stage that has alternative implementations looks its backend up here, so the
assets, the command line and the benchmarks never branch on backend names themselves.
An unknown name is one clear error that names the setting and lists what is available.

Every backend is a class with its kind's shape (`imaging.backend`: `Segmenter`,
`BackgroundRenderer`, `Analyzer`), and the tables below are those classes by the names
they declare. Importing them imports no torch, diffusers or transformers: the neural
modules import those inside the methods that load or run a model.

A neural backend (one with `params_model`) is built from its own settings and the
`ModelHost` the caller has: the assets take it from their GPU resource, the command line
and the benchmarks build it from the settings (`models.host.host_for`). There is no host
to fall back on here: resolving one without a host is an error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from pydantic import BaseModel

from adgen_dagster.imaging.analyze import ClassicalAnalyzer
from adgen_dagster.imaging.backdrop import StudioBackground
from adgen_dagster.imaging.backend import Analyzer, BackgroundRenderer, Segmenter
from adgen_dagster.imaging.segment import ClassicalSegmenter
from adgen_dagster.models.auto_segment import AutoSegmenter
from adgen_dagster.models.birefnet import BiRefNetSegmenter
from adgen_dagster.models.flux import FluxBackground
from adgen_dagster.models.host import ModelHost
from adgen_dagster.models.qwen_vl import QwenAnalyzer
from adgen_dagster.models.u2netp import U2NetpSegmenter

Impl = Union[Segmenter, BackgroundRenderer, Analyzer]


class BackendError(ValueError):
    pass


@dataclass(frozen=True)
class BackendSpec:
    """A backend class, as the settings, the run config and `adgen doctor` list it."""

    cls: type
    params: Optional[type[BaseModel]]  # its own settings: built as cls(params, host); None: cls()
    settings_field: str  # the AdgenSettings field holding those settings
    description: str

    @classmethod
    def of(cls, backend: type) -> "BackendSpec":
        return cls(backend, backend.params_model, backend.settings_field, backend.description)


def _table(*classes: type) -> dict[str, BackendSpec]:
    return {c.name: BackendSpec.of(c) for c in classes}


SEGMENTERS = _table(AutoSegmenter, U2NetpSegmenter, ClassicalSegmenter, BiRefNetSegmenter)
BACKGROUNDS = _table(StudioBackground, FluxBackground)
ANALYZERS = _table(ClassicalAnalyzer, QwenAnalyzer)

TABLES = {"segmenter": (SEGMENTERS, "ADGEN_SEGMENTER"), "background": (BACKGROUNDS, "ADGEN_BACKGROUND"),
          "analyzer": (ANALYZERS, "ADGEN_ANALYZER")}


def spec(kind: str, name: str) -> BackendSpec:
    table, setting = TABLES[kind]
    try:
        return table[name]
    except KeyError:
        raise BackendError(
            f"unknown {kind} backend {name!r}; set {setting} (or the run config field 'backend') "
            f"to one of: {', '.join(sorted(table))}"
        ) from None


@dataclass
class Backend:
    """A resolved backend: the instance and its own settings (if any), which go in the cache key.

    A neural backend's model notes what its last call measured on itself (`last_metadata`:
    load and inference times, where each field came from). Products run on threads
    (`product_threads`), so a call and the reading of its notes go together under a lock,
    and `last_metadata()` gives each thread those of its own last call, not another
    product's. The model host serialises the models' work anyway; CPU backends note nothing
    (`imaging.backend.OnCpu`) and are never locked.
    """

    kind: str
    name: str
    impl: Impl
    params: Optional[BaseModel] = None
    _lock: Optional[threading.Lock] = field(init=False, repr=False, compare=False, default=None)
    _mine: threading.local = field(init=False, repr=False, compare=False, default_factory=threading.local)

    def __post_init__(self) -> None:
        if self.params is not None:
            self._lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        return self.impl.batch_size

    def last_metadata(self) -> dict:
        mine = getattr(self._mine, "metadata", None)
        return dict(mine if mine is not None else self.impl.last_metadata)

    def _noted(self, call, *args, **kwargs):
        if self._lock is None:
            return call(*args, **kwargs)
        with self._lock:
            out = call(*args, **kwargs)
            self._mine.metadata = dict(self.impl.last_metadata)
        return out

    def __call__(self, *args, **kwargs):
        return self._noted(self.impl, *args, **kwargs)

    def batch(self, *args, **kwargs):
        return self._noted(self.impl.batch, *args, **kwargs)  # type: ignore[union-attr]  # segmenters only


def default_params(kind: str, name: str, settings: Any = None) -> Optional[BaseModel]:
    """A backend's own settings as configured (`ADGEN_BIREFNET__*` etc.); None for CPU backends."""
    s = spec(kind, name)
    if s.params is None:
        return None
    if settings is None:
        from adgen_dagster.settings import get_settings

        settings = get_settings()
    return getattr(settings, s.settings_field)


def resolve(kind: str, name: str, params: Optional[BaseModel] = None, host: Optional[ModelHost] = None) -> Backend:
    """The backend `name` of `kind`; a neural one built with `params` (default: the settings) on `host`.

    `params` may be any model with the backend's fields (the run config's section); it is
    validated into the backend's own settings model here, once. `host` is the caller's
    `ModelHost`; a backend that needs one and gets none is a TypeError (a caller's bug).
    """
    s = spec(kind, name)
    if s.params is None:
        return Backend(kind, name, s.cls())
    if host is None:
        raise TypeError(f"the {kind} backend {name!r} runs a model: resolve it with the caller's ModelHost "
                        f"(host=...: the GPU resource's get_host(), or models.host.host_for(settings.gpu))")
    p = s.params.model_validate((params if params is not None else default_params(kind, name)).model_dump())
    return Backend(kind, name, s.cls(p, host), p)


def get_segmenter(name: str, params: Optional[BaseModel] = None, host: Optional[ModelHost] = None) -> Backend:
    return resolve("segmenter", name, params, host)


def get_background(name: str, params: Optional[BaseModel] = None, host: Optional[ModelHost] = None) -> Backend:
    return resolve("background", name, params, host)


def get_analyzer(name: str, params: Optional[BaseModel] = None, host: Optional[ModelHost] = None) -> Backend:
    return resolve("analyzer", name, params, host)
