"""Dagster run config for each stage, generated from the core's parameter models.

The core defines each stage's parameters once (a pydantic model with descriptions);
here each becomes a Dagster `Config` with the same fields, defaults taken from the
settings in force (environment included), so the Launchpad shows every knob with its
description and nothing is declared twice.
"""

from __future__ import annotations

from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, Field, create_model

P = TypeVar("P", bound=BaseModel)


def stage_config(name: str, params: BaseModel, **extra: tuple[type, Any, str]) -> type[dg.Config]:
    """A Config class with `params`' fields (defaulting to its values) plus `extra` fields."""
    fields: dict[str, Any] = {}
    for field_name, info in type(params).model_fields.items():
        fields[field_name] = (info.annotation, Field(getattr(params, field_name), description=info.description))
    for field_name, (typ, default, description) in extra.items():
        fields[field_name] = (typ, Field(default, description=description))
    return create_model(name, __base__=dg.Config, **fields)


def to_params(config: dg.Config, params_cls: type[P]) -> P:
    """The core's parameter model from a run's config (validated by the core's own rules)."""
    return params_cls.model_validate({n: getattr(config, n) for n in params_cls.model_fields})


def backend_fields(kind: str, default: str, help_text: str, settings: Any) -> dict[str, tuple[type, Any, str]]:
    """`backend` plus one nested config per backend of `kind` that has settings of its own (defaults from `settings`)."""
    from adgen_dagster.backends import TABLES

    table, setting = TABLES[kind]
    fields: dict[str, tuple[type, Any, str]] = {
        "backend": (str, default, f"{help_text} One of: {', '.join(sorted(table))} ({setting})."),
    }
    for name, spec in table.items():
        if spec.params is not None:
            cls = stage_config(f"{spec.params.__name__.removesuffix('Params')}Config", getattr(settings, spec.settings_field))
            fields[spec.settings_field] = (cls, cls(), f"Settings of the '{name}' backend: {spec.description}.")
    return fields


def configured_backend(kind: str, config: dg.Config, gpu: Any):
    """The backend a run's config selects, built with that config's settings on the GPU resource's host."""
    from adgen_dagster.backends import resolve, spec

    s = spec(kind, config.backend)
    if s.params is None:
        return resolve(kind, config.backend)
    return resolve(kind, config.backend, getattr(config, s.settings_field), gpu.get_host())
