"""The whole run's config checked before any stage does work.

Dagster checks run config against each op's schema when a run is launched (types,
enums: the Launchpad refuses `placement: sideways`), but the ranges and formats of the
core's parameter models (`width` at most 8192, `sizes` as WIDTHxHEIGHT) are only known
to pydantic, which Dagster runs when a step starts (dagster-io/dagster#12536). Left
there, a bad `ad_creatives` value would let six stages run and then fail the seventh
with a multi-line error. So every asset starts with `starting(context, stage)`: the
first step of a run validates the config of every stage in the run against the core's
models and fails the run at once, with one line naming each bad field.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import dagster as dg
from pydantic import BaseModel, ValidationError

_RULES: dict[str, tuple[type[dg.Config], type[BaseModel], Optional[str]]] = {}


def rule(op: str, config_cls: type[dg.Config], params_cls: type[BaseModel], backend_kind: Optional[str] = None) -> None:
    """Register how `op`'s run config is validated: its Config class, the core model, its backend kind."""
    _RULES[op] = (config_cls, params_cls, backend_kind)


def _lines(where: str, exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        got = e.get("input")
        shown = f" (got {got!r})" if isinstance(got, (int, float, str, bool)) and len(repr(got)) <= 60 else ""
        out.append(f"{where}{'.' + loc if loc else ''}: {msg}{shown}")
    return out


def problems(run_config: dict[str, Any]) -> list[str]:
    """One line per bad field of the run config's stages (empty when all is well)."""
    from adgen_dagster.backends import BackendError, spec

    out: list[str] = []
    for op, entry in (run_config.get("ops") or {}).items():
        if op not in _RULES or not isinstance(entry, dict):
            continue
        config_cls, params_cls, kind = _RULES[op]
        where = f"ops.{op}.config"
        try:
            config = config_cls(**(entry.get("config") or {}))
            params_cls.model_validate({n: getattr(config, n) for n in params_cls.model_fields})
        except ValidationError as exc:
            out += _lines(where, exc)
            continue
        if kind is None:
            continue
        try:
            s = spec(kind, config.backend)
        except BackendError as exc:
            out.append(f"{where}.backend: {exc}")
            continue
        if s.params is not None:
            try:
                s.params.model_validate(getattr(config, s.settings_field).model_dump())
            except ValidationError as exc:
                out += _lines(f"{where}.{s.settings_field}", exc)
    return out


def check(run_config: dict[str, Any]) -> None:
    found = problems(run_config)
    if found:
        raise dg.Failure(description="invalid run config, nothing was run: " + "; ".join(found),
                         metadata={"invalid_fields": "; ".join(found)}, allow_retries=False)


@contextmanager
def starting(context: dg.AssetExecutionContext, stage: str) -> Iterator[None]:
    """An asset's set-up: the whole run's config first, then any error named for the stage."""
    from assets_defs.common import failures_named

    check(context.run.run_config)
    with failures_named(stage):
        store = getattr(context.resources, "store", None)
        if store is not None:
            store.get_store()  # a misconfigured store (root empty or a file) fails here, naming the setting
        yield
