"""What every asset does around its stage: loop products, cache, fail readably, report.

Assets are written for a run that holds one or many partitions (batched backfills):
`materialize_stage` runs the stage (through `adgen_dagster.stage_runner.run_stage`, which
owns the cache and the product files) for each product id in the run and turns any exception
into one `dagster.Failure` whose description names the stage, the product and what was
wrong, instead of a traceback as the only clue.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import dagster as dg
from pydantic import BaseModel

from adgen_dagster.imaging.decode import BadImageError
from adgen_dagster.imaging.details import DetailsError
from adgen_dagster.models.errors import ModelError
from adgen_dagster.models.memory import free_after_oom
from adgen_dagster.product_threads import overlapped, product_workers
from adgen_dagster.stage_runner import StageResult, product_key, run_stage, stage_key
from adgen_dagster.stages import Compute, Files, Stage, StageContext
from resources.object_store import ObjectNotFound, StoreError
from resources.store_resource import StoreResource

# Errors whose message is already the whole story for the user.
USER_ERRORS = (BadImageError, DetailsError, ObjectNotFound, StoreError, ModelError, ValueError)


@contextmanager
def failures_named(stage: str, pid: str | None = None) -> Iterator[None]:
    """Turn any error into one `dagster.Failure` that names the stage and product."""
    where = f"{stage} failed for product {pid!r}" if pid else f"{stage} cannot start"
    try:
        yield
    except dg.Failure:
        raise
    except USER_ERRORS as exc:
        if getattr(exc, "oom", False):
            free_after_oom(exc)  # here the frames that held the model have unwound
        raise dg.Failure(
            description=f"{where}: {exc}",
            metadata={"product": pid or "", "stage": stage, "error": str(exc)},
            allow_retries=False,
        ) from exc
    except Exception as exc:
        raise dg.Failure(
            description=f"{where}: {type(exc).__name__}: {exc}",
            metadata={"product": pid or "", "stage": stage, "error": f"{type(exc).__name__}: {exc}"},
        ) from exc


def partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []


def materialize_stage(
    context: dg.AssetExecutionContext,
    store: StoreResource,
    stage: Stage,
    params: BaseModel,
    compute: Compute,
    prepare: Callable[[str], tuple[StageContext, Files]] = lambda pid: (StageContext(pid), {}),
    backend: Any = None,
) -> dict[str, StageResult]:
    """Run one stage for every product of this run; returns {pid: result}.

    `prepare(pid)` gives the product's context and the files given from outside its
    folder (the upload); the stage reads its product files (`stage.inputs`) itself.
    `backend` is the resolved backend (None for a stage without one), whose own settings
    go in the cache key. A compute with a `.batch` (a model that takes several images per
    pass) first gets every cache miss of the run in batches; a batch that fails is redone
    product by product, so a bad product still fails only its own partition. The products
    run a few at a time on threads (`adgen_dagster.product_threads`); results, logs and
    failures are handled here in the products' order.
    """
    s, cache = store.get_store(), store.get_cache()
    pids = partition_keys(context)
    done = _precompute_batches(context, s, cache, pids, stage, params, compute, prepare, backend)
    results: dict[str, StageResult] = {}
    failed: dict[str, dg.Failure] = {}

    def start(pid: str) -> tuple[str, StageResult | dg.Failure]:  # on a product thread
        try:
            with failures_named(stage.name, pid):
                ctx, given = prepare(pid)
                ready = done.pop(pid, None)
                fn = compute if ready is None else (lambda files, ctx: ready)
                return pid, run_stage(s, cache, stage, params, ctx, fn, given, backend)
        except dg.Failure as failure:
            return pid, failure

    def finish(outcome: tuple[str, StageResult | dg.Failure]) -> None:  # on this thread, in the products' order
        pid, r = outcome
        if isinstance(r, StageResult):
            results[pid] = r
            context.log.info(f"{stage.name} {pid}: cache {r.cache} ({r.key[:12]}), {r.timings_ms}")
            return
        store_down = isinstance(r.__cause__, StoreError) and not isinstance(r.__cause__, ObjectNotFound)
        if len(pids) == 1 or store_down:  # one product, or nothing else can work either
            raise r
        failed[pid] = r
        context.log.error(r.description or "")

    # A batch's products a few at a time, one per core (as `adgen run` does): same bytes, both cores busy.
    overlapped(pids, start, finish, product_workers())
    if failed:
        raise batch_failure(stage.name, failed, [p for p in pids if p not in failed])
    return results


def batch_failure(stage: str, failed: dict[str, dg.Failure], ok: list[str]) -> dg.Failure:
    """One failure for a batch in which some products failed and the others are done.

    Dagster cannot mark single partitions of a range run failed (dagster-io/dagster#17836),
    so the step fails; the others' outputs are written and cached, and the
    `split_failed_batches` sensor re-runs each product of the batch on its own, so each
    bad product ends up failing alone and the rest finish (from the cache where they can).
    """
    reasons = "; ".join(f.description or "" for f in failed.values())
    return dg.Failure(
        description=(f"{stage}: {len(failed)} of {len(failed) + len(ok)} products in this batch failed: {reasons}. "
                     f"The other {len(ok)} are done and cached; each product of the batch is re-run on its own."),
        metadata={"failed_products": ", ".join(failed), "done_products": ", ".join(ok), "stage": stage},
        allow_retries=False,
    )


def _precompute_batches(context, s, cache, pids, stage: Stage, params, compute: Compute, prepare,
                        backend) -> dict[str, tuple[Files, dict]]:
    """{pid: (outputs, metadata)} for the cache misses of a batching stage; {} otherwise."""
    fn = compute
    if len(pids) < 2 or getattr(fn, "batch", None) is None:
        return {}
    misses: dict[str, tuple[Files, StageContext]] = {}
    for pid in pids:
        try:
            ctx, given = prepare(pid)
            key, files = stage_key(s, cache, stage, params, ctx, given, backend)
            if cache.manifest(stage.name, key) is None:
                for name in stage.inputs:
                    files.setdefault(name, s.get(product_key(pid, stage.source_of(name))))
                misses[pid] = (files, ctx)
        except Exception:  # this product's own step reports it
            continue
    done: dict[str, tuple[Files, dict]] = {}
    order = list(misses)
    size = max(1, int(getattr(fn, "batch_size", 4)))
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        try:
            for pid, out in zip(chunk, fn.batch([misses[p] for p in chunk])):
                done[pid] = out
        except Exception as exc:
            if getattr(exc, "oom", False):
                free_after_oom(exc)
            context.log.warning(f"{stage.name}: batch {', '.join(chunk)} failed ({type(exc).__name__}: {exc}); "
                                "running those products one by one")
    if done:
        context.log.info(f"{stage.name}: {len(done)} product(s) computed in batches of up to {size}")
    return done


def _value(key: str, value: Any):
    if key.endswith("preview") and isinstance(value, str):
        return dg.MetadataValue.md(value)
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(value)
    return value


def stage_metadata(
    store: StoreResource, pid: str, r: StageResult, output: str, version: str, backend: str = "",
    only: tuple[str, ...] | None = None,
) -> dict:
    """What the UI shows for one product: output location, cache status, timings, previews."""
    md = {k: _value(k, v) for k, v in r.metadata.items() if only is None or k in only}
    md.update({
        "output": store.get_store().uri(product_key(pid, output)),
        "cache": r.cache,
        "cache_key": r.key,
        "stage_version": version,
        "settings_key": r.settings_key,
        "timings_ms": r.timings_ms,
    })
    if backend:
        md["backend"] = backend
    return md


PER_PRODUCT_SKIP = ("preview", "mask_preview", "analysis", "output", "stage_version")


def run_metadata(per_product: dict[str, dict]) -> dict:
    """One product: its metadata. Several (a batch, which Dagster records as one
    materialization for the whole range): the first product's, a count, the list, and
    `per_product`, each product's own values (cache status, timings, field sources, ...)."""
    if len(per_product) == 1:
        return next(iter(per_product.values()))
    first = next(iter(per_product.values()), {})

    def plain(v):
        return v.value if isinstance(v, dg.MetadataValue) else v

    table = {pid: {k: plain(v) for k, v in md.items() if k not in PER_PRODUCT_SKIP} for pid, md in per_product.items()}
    return {**first, "products": len(per_product), "product_ids": ", ".join(per_product),
            "per_product": dg.MetadataValue.json(table)}
