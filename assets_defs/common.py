"""What every asset does around its core call: loop products, time, fail readably.

Assets are written for a run that holds one or many partitions (batched backfills):
`for_each_product` calls the stage for each product id in the run, collects the
metadata, and turns any exception into one `dagster.Failure` whose description names
the product and what was wrong (the upload's file name comes from the stage's own
message), instead of a traceback as the only clue.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import dagster as dg

from adgen_dagster.imaging.decode import BadImageError
from adgen_dagster.imaging.details import DetailsError
from resources.object_store import ObjectNotFound, StoreError

# Errors whose message is already the whole story for the user.
USER_ERRORS = (BadImageError, DetailsError, ObjectNotFound, StoreError, ValueError)


class Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[label] = round((time.perf_counter() - t0) * 1000, 1)


def partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []


@contextmanager
def failures_named(stage: str, pid: str | None = None) -> Iterator[None]:
    """Turn any error into one `dagster.Failure` that names the stage and product."""
    where = f"{stage} failed for product {pid!r}" if pid else f"{stage} cannot start"
    try:
        yield
    except dg.Failure:
        raise
    except USER_ERRORS as exc:
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


def for_each_product(context: dg.AssetExecutionContext, stage: str, fn: Callable[[str], dict]) -> dict[str, dict]:
    """Run `fn(pid)` for every product of this run; returns {pid: metadata}."""
    results: dict[str, dict] = {}
    for pid in partition_keys(context):
        with failures_named(stage, pid):
            results[pid] = fn(pid)
    return results


def run_metadata(results: dict[str, dict]) -> dict:
    """One product: its metadata. Several: the first product's plus a count and the list."""
    if len(results) == 1:
        return next(iter(results.values()))
    first = next(iter(results.values()), {})
    return {**first, "products": len(results), "product_ids": ", ".join(results)}
