"""Backends by name: the one place a setting like `ADGEN_SEGMENTER=birefnet` resolves.

Each stage that has alternative implementations looks its backend up here, so the
assets, the command line and the benchmarks never branch on backend names themselves.
An unknown name is one clear error that names the setting and lists what is available.

A backend is a callable with the stage's signature:

- segmenter: `(image, SegmentParams) -> Cutout`, optionally with `.batch(images, params)`
- background: `(details, product_colours, BackdropParams, seed=...) -> Image`
- analyzer: `(image, mask, AnalysisParams) -> Analysis`

Neural backends are built by a factory from their own settings (`models.params`) and the
process's `ModelHost`; their modules (and torch) are imported only when selected. After a
call, a backend may expose `last_metadata` (device, load and inference times, where each
analysis field came from) for the materialization's metadata.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import BaseModel

from adgen_dagster.models.params import BiRefNetParams, FluxParams, QwenParams


class BackendError(ValueError):
    pass


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives; `target` is 'module:attr' (a function, or a factory if `params`)."""

    target: str
    params: Optional[type[BaseModel]] = None  # its own settings: a factory (params, host) -> callable
    settings_field: str = ""  # the AdgenSettings field holding those settings
    description: str = ""


SEGMENTERS: dict[str, BackendSpec] = {
    "auto": BackendSpec("adgen_dagster.models.auto_segment:cutout_auto",
                        description="CPU, shipped model: U2-Net-p refined, or classical on a clean studio backdrop where it is better"),
    "u2netp": BackendSpec("adgen_dagster.models.u2netp:cutout_u2netp",
                          description="CPU, shipped model (4.6 MB, OpenCV DNN): U2-Net-p with a crop pass, refined at full size"),
    "classical": BackendSpec("adgen_dagster.imaging.segment:cutout_classical",
                             description="CPU, no weights: background model + GrabCut + band matting (plain backdrops)"),
    "birefnet": BackendSpec("adgen_dagster.models.birefnet:BiRefNetSegmenter", BiRefNetParams, "birefnet",
                            "BiRefNet (transformers, remote code) on the GPU"),
}
BACKGROUNDS: dict[str, BackendSpec] = {
    "studio": BackendSpec("adgen_dagster.imaging.backdrop:render_studio",
                          description="CPU, no weights: studio sweep in the product's colours"),
    "flux": BackendSpec("adgen_dagster.models.flux:FluxBackground", FluxParams, "flux",
                        "FLUX.1 (diffusers) txt2img or img2img from the studio sweep, on the GPU"),
}
ANALYZERS: dict[str, BackendSpec] = {
    "classical": BackendSpec("adgen_dagster.imaging.analyze:analyze_classical",
                             description="CPU, no weights: colour science and layout"),
    "qwen2-vl": BackendSpec("adgen_dagster.models.qwen_vl:QwenAnalyzer", QwenParams, "qwen2_vl",
                            "Qwen2-VL / Qwen2.5-VL (transformers) answering the analysis schema, classical fallback"),
}

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
    """A resolved backend: its callable and its own settings (if any), which go in the cache key."""

    kind: str
    name: str
    fn: Callable
    params: Optional[BaseModel] = None

    def last_metadata(self) -> dict:
        return dict(getattr(self.fn, "last_metadata", None) or {})

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def default_params(kind: str, name: str, settings: Any = None) -> Optional[BaseModel]:
    """A backend's own settings as configured (`ADGEN_BIREFNET__*` etc.); None for CPU backends."""
    s = spec(kind, name)
    if s.params is None:
        return None
    if settings is None:
        from adgen_dagster.settings import get_settings

        settings = get_settings()
    return getattr(settings, s.settings_field)


def resolve(kind: str, name: str, params: Optional[BaseModel] = None, host: Any = None) -> Backend:
    """The backend `name` of `kind`, built with `params` (default: the settings) on `host`.

    `params` may be any model with the backend's fields (the run config's section); it is
    validated into the backend's own settings model here, once.
    """
    s = spec(kind, name)
    module, attr = s.target.split(":")
    target = getattr(importlib.import_module(module), attr)
    if s.params is None:
        return Backend(kind, name, target)
    p = s.params.model_validate((params if params is not None else default_params(kind, name)).model_dump())
    if host is None:
        from adgen_dagster.settings import get_settings
        from resources.model_host import host_for

        host = host_for(get_settings().gpu)
    return Backend(kind, name, target(p, host), p)


def get_segmenter(name: str, params: Optional[BaseModel] = None, host: Any = None) -> Backend:
    return resolve("segmenter", name, params, host)


def get_background(name: str, params: Optional[BaseModel] = None, host: Any = None) -> Backend:
    return resolve("background", name, params, host)


def get_analyzer(name: str, params: Optional[BaseModel] = None, host: Any = None) -> Backend:
    return resolve("analyzer", name, params, host)
