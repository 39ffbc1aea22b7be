"""Backends by name: the one place a setting like `ADGEN_SEGMENTER=classical` resolves.

Each stage that has alternative implementations looks its backend up here, so the
assets and the benchmarks never branch on backend names themselves. An unknown name is
one clear error that names the setting to change and lists what is available.
"""

from __future__ import annotations

from typing import Callable

from adgen_dagster.imaging.analyze import analyze_classical
from adgen_dagster.imaging.backdrop import render_studio
from adgen_dagster.imaging.segment import cutout_classical


class BackendError(ValueError):
    pass


SEGMENTERS: dict[str, Callable] = {"classical": cutout_classical}
BACKGROUNDS: dict[str, Callable] = {"studio": render_studio}
ANALYZERS: dict[str, Callable] = {"classical": analyze_classical}


def _get(table: dict[str, Callable], name: str, what: str, setting: str) -> Callable:
    try:
        return table[name]
    except KeyError:
        raise BackendError(
            f"unknown {what} backend {name!r}; set {setting} (or the run config field 'backend') "
            f"to one of: {', '.join(sorted(table))}"
        ) from None


def get_segmenter(name: str) -> Callable:
    return _get(SEGMENTERS, name, "segmenter", "ADGEN_SEGMENTER")


def get_background(name: str) -> Callable:
    return _get(BACKGROUNDS, name, "background", "ADGEN_BACKGROUND")


def get_analyzer(name: str) -> Callable:
    return _get(ANALYZERS, name, "analyzer", "ADGEN_ANALYZER")
