"""The catalog sensor: manifests under `catalogs/` set product details and request runs.

`catalog_sensor` watches `catalogs/*.csv` and `catalogs/*.jsonl` (columns/fields: file,
name, headline, subline, price, style; optional palette, seed; rows in `catalog_rows`).
Each valid row's details are written as the sidecar `uploads/<file>.json` (the row
replaces any earlier details), the upload is registered, all valid rows of a tick are
added as partitions in one request, and one run is requested per product with run key
`catalog:<catalog key>:<catalog version>:<pid>`. Bad rows are logged with the catalog and
row number and listed in `catalogs/<file>.report.json`, which is also the stored marker:
a catalog is processed once per version. The upload sensor does not request a second run
for a product whose current image and sidecar versions a catalog already requested.

Fairness: each tick has `sensor.catalog_rows_per_tick` rows (and `sensor.tick_seconds`)
to share, and every unfinished catalog gets an equal share, rows a small catalog does not
need going to the others in further rounds. So a one-row catalog dropped beside a
100,000-row one is done in the next tick, and the big one still gets nearly the whole
budget. Names that are not catalogs the store can read (links, FIFOs, odd names) are
reported once (the cursor remembers them, `sensors.told`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import dagster as dg

from adgen_dagster.sensors.base import json_cursor, parallel, partition_requests, read_json, StoreSensor
from adgen_dagster.sensors.catalog_rows import CatalogError, apply_row, Row, validate_row, parse_catalog
from adgen_dagster.sensors.told import Told
from adgen_dagster.settings import SensorSettings
from adgen_dagster.encoding import encode_json
from resources.object_store import NotAnObject, ObjectInfo, ObjectStore, TooLarge
from resources.products import UPLOADS

CATALOGS = "catalogs/"
CATALOG_SUFFIXES = (".csv", ".jsonl")
SLICE = 500  # rows handled between two looks at the clock


def _is_catalog(key: str) -> bool:
    return key.lower().endswith(CATALOG_SUFFIXES)


def _report_key(catalog: str) -> str:
    return catalog + ".report.json"


@dataclass
class _Catalog:
    """One unfinished catalog in this tick: its rows (parsed once per tick) and its report."""

    info: ObjectInfo
    report: dict
    rows: list[Row] = field(default_factory=list)
    done_now: list[Row] = field(default_factory=list)  # rows handled in this tick

    @property
    def left(self) -> int:
        return 0 if self.report.get("done") else len(self.rows) - int(self.report.get("next_row", 0))


def _open_catalog(context, store: ObjectStore, info: ObjectInfo, settings: SensorSettings) -> Optional[_Catalog]:
    """The catalog if it has rows left for its current version; a catalog that cannot be read is reported and done."""
    report = read_json(store, _report_key(info.key))
    if report and report.get("catalog_version") == info.version and report.get("done"):
        return None
    if not report or report.get("catalog_version") != info.version or not isinstance(report.get("ok"), list):
        report = {"catalog": info.key, "catalog_version": info.version, "next_row": 0, "ok": [], "failed": []}
    cat = _Catalog(info, report)
    try:
        data = store.get(info.key, settings.catalog_max_bytes)
        cat.rows = parse_catalog(info.key, data)
    except (CatalogError, TooLarge, NotAnObject) as exc:
        context.log.error(f"catalog {info.key!r} cannot be read: {exc}")
        report.update(done=True, rows=0, error=str(exc))
    return cat


def _take(store: ObjectStore, cat: _Catalog, budget: int, workers: int) -> None:
    """Rows [next_row, next_row + budget) of one catalog, validated, applied and recorded in its report."""
    report = cat.report
    start = int(report.get("next_row", 0))
    chunk = cat.rows[start:start + budget]
    seen = {r["product_id"]: r["row"] for r in report["ok"]}
    for row in chunk:
        validate_row(row)
        if not row.error and row.pid in seen:
            row.error = f"same product id {row.pid!r} as row {seen[row.pid]}"
        elif not row.error:
            seen[row.pid] = row.number
    parallel(lambda r: apply_row(store, cat.info.key, r) if not r.error else r, chunk, workers)
    for row in chunk:
        if row.error:
            report["failed"].append({"row": row.number, "file": row.file or row.fields.get("file"), "error": row.error})
        else:
            row.run_key = f"catalog:{cat.info.key}:{cat.info.version}:{row.pid}"
            report["ok"].append({"row": row.number, "file": row.file, "product_id": row.pid})
    report.update(rows=len(cat.rows), next_row=start + len(chunk), done=start + len(chunk) >= len(cat.rows))
    cat.done_now += chunk


def _share_out(store: ObjectStore, pending: list[_Catalog], settings: SensorSettings, started: float) -> None:
    """Equal shares of the tick's row budget to every unfinished catalog, round after round.

    Stops at `tick_seconds`, but only after every catalog had a first slice of its share:
    a slow store slows all catalogs down, it never starves one of them.
    """
    budget = settings.catalog_rows_per_tick
    first_round = True

    def in_time() -> bool:
        return time.monotonic() - started < settings.tick_seconds

    while budget > 0 and (first_round or in_time()):
        open_ = [c for c in pending if c.left > 0]
        if not open_:
            return
        share = max(1, budget // len(open_))
        for cat in open_:
            want = min(share, budget, cat.left)
            sliced = 0
            while want > 0 and ((first_round and sliced == 0) or in_time()):
                step = min(want, SLICE)
                _take(store, cat, step, settings.workers)
                want, budget, sliced = want - step, budget - step, sliced + 1
            if budget <= 0:
                return
        first_round = False


def _requests(cat: _Catalog) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=r.run_key, partition_key=r.pid,
                          tags={"adgen/source": "catalog", "adgen/catalog": cat.info.key, "adgen/upload": UPLOADS + r.file})
            for r in cat.done_now if r.run_key]


def _finish(context, store: ObjectStore, cat: _Catalog) -> None:
    """Log what this tick did to one catalog and store its report (last: the marker)."""
    report = cat.report
    report["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for row in cat.done_now:
        if row.error:
            context.log.warning(f"catalog {cat.info.key!r} row {row.number}: {row.error}")
    store.put(_report_key(cat.info.key), encode_json(report), "application/json")
    if "error" not in report:
        good = sum(bool(r.run_key) for r in cat.done_now)
        first = report["next_row"] - len(cat.done_now) + 1
        context.log.info(f"catalog {cat.info.key!r}: rows {first}-{report['next_row']} of {report['rows']}: "
                         f"{good} registered, {len(cat.done_now) - good} failed"
                         + ("" if report["done"] else "; continues next tick"))


def _pending_catalogs(context, store: ObjectStore, settings: SensorSettings, told: Told) -> list[_Catalog]:
    pending: list[_Catalog] = []
    start = None
    while True:
        page = store.list_page(CATALOGS, start_after=start, limit=settings.page_size)
        for r in page.refused:
            if _is_catalog(r.key) and told.first(r.key, r.reason):
                context.log.warning(f"catalog {r.key!r} skipped: {r.reason}")
        for info in page.objects:
            if not _is_catalog(info.key):
                continue
            try:
                cat = _open_catalog(context, store, info, settings)
            except Exception as exc:  # one broken catalog never stops the others
                context.log.error(f"catalog {info.key!r}: {type(exc).__name__}: {exc}")
                continue
            if cat is not None:
                pending.append(cat)
        if page.next_start_after is None:
            return pending
        start = page.next_start_after


def evaluate_catalogs(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    started = time.monotonic()
    told = Told(json_cursor(context.cursor).get("told"))
    pending = _pending_catalogs(context, store, settings, told)
    _share_out(store, pending, settings, started)
    requests: list[dg.RunRequest] = []
    for cat in pending:
        if not cat.done_now and "error" not in cat.report:
            continue  # no share this tick (out of time): untouched
        try:
            _finish(context, store, cat)
            requests += _requests(cat)
        except Exception as exc:  # one broken catalog never stops the others
            context.log.error(f"catalog {cat.info.key!r}: {type(exc).__name__}: {exc}")
    partitions = partition_requests(context, (r.partition_key for r in requests))
    skip = None if requests or partitions else "no new or changed catalogs"
    cursor = json.dumps({"told": told.dump()}) if told.dump() else None
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions, skip_reason=skip, cursor=cursor)


CATALOG_SENSOR = StoreSensor(
    "catalog_sensor", evaluate_catalogs, "catalog_interval_seconds",
    "Catalog manifests (catalogs/*.csv, *.jsonl: file, name, headline, subline, price, style) "
    "set product details, register the products and request their runs; bad rows go to <catalog>.report.json.",
)
