"""One asset factory: a Dagster (multi-)asset from a registry entry and its asset module's plan.

Everything an asset has in common with the others comes from the stage registry
(`adgen_dagster.stages`): keys, deps (the assets that write the files the stage reads),
code version, run config (the stage's parameters plus its backend's), the `gpu` pool and
resource for a stage with a backend (bound in `Definitions`: `definitions.location_resources`),
batching. What is an asset's own (descriptions, kinds, checks,
special metadata) is its module's `AssetPlan`.

No `from __future__ import annotations` here: Dagster reads the op's `config` annotation,
the Config class made for the stage, at decoration time.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.stage_runner import StageResult, build_step
from adgen_dagster.stages import STAGES, Compute, Files, Stage, StageContext, backend_for, deps, params_for
from assets_defs.checks import check_spec, per_product_evaluations
from assets_defs.common import materialize_stage, run_metadata, stage_metadata
from assets_defs.config import backend_fields, configured_backend, stage_config, to_params
from assets_defs.run_config import rule, starting
from resources.object_store import ObjectNotFound
from resources.products import UploadRecord, upload_files, upload_for
from resources.store_resource import StoreResource


@dataclass(frozen=True)
class Check:
    """A check evaluated per product from its stage's metadata, on asset `asset`."""

    name: str
    asset: str
    description: str
    result: Callable[[dict, str], dg.AssetCheckResult]  # (stage metadata, pid) -> result
    # An error of this type fails the product and is also this check's verdict on it:
    # (reason, pid) -> result, recorded on the product's partition before the step fails.
    rejects: Optional[tuple[type[Exception], Callable[[str, str], dg.AssetCheckResult]]] = None


# (store, pid, stage result, stage, backend name) -> {asset key: that product's metadata}
Metadata = Callable[[StoreResource, str, StageResult, Stage, str], dict[str, dict]]


@dataclass(frozen=True)
class AssetPlan:
    """What an asset module says about its stage's asset(s)."""

    stage: str
    description: Union[str, Mapping[str, str]]  # one text, or per asset key
    kinds: Union[frozenset, set, Mapping[str, set]] = frozenset({"image"})
    checks: Sequence[Check] = ()
    backend_help: str = ""  # the Launchpad's description of the `backend` field
    metadata: Optional[Metadata] = None  # default: `default_metadata`

    def description_of(self, key: str) -> str:
        return self.description if isinstance(self.description, str) else self.description[key]

    def kinds_of(self, key: str) -> set:
        return set(self.kinds[key] if isinstance(self.kinds, Mapping) else self.kinds)


def default_metadata(store: StoreResource, pid: str, r: StageResult, stage: Stage, backend: str) -> dict[str, dict]:
    """Each asset key: its first output's location, cache status, timings, and the stage's own metadata."""
    return {key: stage_metadata(store, pid, r, stage.files_of(key)[0], stage.version, backend) for key in stage.asset_keys}


def _preparer(stage: Stage, store: StoreResource, params: Any) -> Callable[[str], tuple[StageContext, Files, Optional[UploadRecord]]]:
    """pid -> (context, given files, upload record), each product's looked up once per step."""

    @cache
    def prepare(pid: str) -> tuple[StageContext, Files, Optional[UploadRecord]]:
        if not (stage.sources or stage.names_upload):
            return StageContext(pid), {}, None
        s = store.get_store()
        try:
            rec = upload_for(s, pid)
        except ObjectNotFound:
            if stage.sources:
                raise
            return StageContext(pid), {}, None  # messages then name the product id
        given = upload_files(s, rec, params.max_bytes) if stage.sources else {}
        return StageContext(pid, rec.file_name), given, rec

    return prepare


def _noting(compute: Compute, checks: Sequence[Check], rejected: dict[str, tuple[Check, str]]) -> Compute:
    """`compute`, recording which product a check's error rejected and why."""
    rejecting = [c for c in checks if c.rejects]
    if not rejecting:
        return compute

    def run(files: Files, ctx: StageContext):
        try:
            return compute(files, ctx)
        except tuple(c.rejects[0] for c in rejecting) as exc:
            rejected[ctx.product_id] = (next(c for c in rejecting if isinstance(exc, c.rejects[0])), str(exc))
            raise

    for attr in ("batch", "batch_size"):
        if hasattr(compute, attr):
            setattr(run, attr, getattr(compute, attr))
    return run


def stage_asset(stage: Stage, plan: AssetPlan, settings: Any, stages: Sequence[Stage] = STAGES) -> dg.AssetsDefinition:
    extra = backend_fields(stage.backend, backend_for(stage, settings), plan.backend_help) if stage.backend else {}
    config_cls = stage_config(f"{stage.params.__name__.removesuffix('Params')}Config", params_for(stage, settings), **extra)
    rule(stage.name, config_cls, stage.params, stage.backend or None)
    upstream = deps(stage, stages)
    keys = stage.asset_keys

    @dg.multi_asset(
        name=stage.name,
        specs=[dg.AssetSpec(key, deps=upstream, kinds=plan.kinds_of(key), description=plan.description_of(key))
               for key in keys],
        check_specs=[check_spec(c.name, c.asset, c.description) for c in plan.checks],
        partitions_def=products_partitions,
        group_name="adgen",
        backfill_policy=dg.BackfillPolicy.multi_run(settings.batch_size),
        pool="gpu" if stage.backend else None,
        required_resource_keys={"store", "gpu"} if stage.backend else {"store"},
        code_version=stage.version,
        description=plan.description_of(keys[0]) if len(keys) == 1 else None,
        can_subset=False,
    )
    def asset(context: dg.AssetExecutionContext, config: config_cls):
        store: StoreResource = context.resources.store
        with starting(context, stage.name):
            params = to_params(config, stage.params)
            backend = configured_backend(stage.backend, config, context.resources.gpu) if stage.backend else None
            compute = build_step(stage, params, backend)
        prepare = _preparer(stage, store, params)
        rejected: dict[str, tuple[Check, str]] = {}
        try:
            results = materialize_stage(context, store, stage, params, _noting(compute, plan.checks, rejected),
                                        lambda pid: prepare(pid)[:2], backend)
        except dg.Failure:
            for check in plan.checks:  # the reasons also go on the check, each on its product's partition
                mine = {pid: check.rejects[1](why, pid) for pid, (c, why) in rejected.items() if c is check}
                if mine:
                    yield from per_product_evaluations(context, check.asset, mine, materialized=False)
            raise
        backend_name = config.backend if stage.backend else ""
        per_product = {pid: (plan.metadata or default_metadata)(store, pid, r, stage, backend_name)
                       for pid, r in results.items()}
        for pid in results:
            rec = prepare(pid)[2]
            if stage.sources and rec is not None:
                for md in per_product[pid].values():
                    md["upload"] = rec.upload_key
        for key in keys:
            yield dg.MaterializeResult(asset_key=key, metadata=run_metadata({pid: md[key] for pid, md in per_product.items()}))
        for check in plan.checks:
            yield from per_product_evaluations(context, check.asset, {
                pid: check.result(r.metadata, pid) for pid, r in results.items()})

    return asset


def build_assets(plans: Mapping[str, AssetPlan], settings: Any, stages: Sequence[Stage] = STAGES) -> list[dg.AssetsDefinition]:
    """One asset (or multi-asset) per stage of the registry, in graph order."""
    missing = [s.name for s in stages if s.name not in plans]
    if missing:
        raise ValueError(f"no asset plan for stage(s) {', '.join(missing)}: add an asset module for each")
    return [stage_asset(s, plans[s.name], settings, stages) for s in stages]
