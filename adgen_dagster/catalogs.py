"""The catalog sensor: manifests under `catalogs/` set product details and request runs.

`catalog_sensor` watches `catalogs/*.csv` and `catalogs/*.jsonl` (columns/fields: file,
name, headline, subline, price, style; optional palette, seed). Each valid row's details
are written as the sidecar `uploads/<file>.json` (the row replaces any earlier details),
the upload is registered, all valid rows of a tick are added as partitions in one
request, and one run is requested per product with run key
`catalog:<catalog key>:<catalog version>:<pid>`. Bad rows are logged with the catalog and
row number and listed in `catalogs/<file>.report.json`, which is also the stored marker:
a catalog is processed once per version. The upload sensor does not request a second run
for a product whose current image and sidecar versions a catalog already requested.

Fairness: each tick has `sensor.catalog_rows_per_tick` rows (and `sensor.tick_seconds`)
to share, and every unfinished catalog gets an equal share, rows a small catalog does not
need going to the others in further rounds. So a one-row catalog dropped beside a
100,000-row one is done in the next tick, and the big one still gets nearly the whole
budget. Names that are not catalogs the store can read (links, FIFOs, odd names) are
reported once (the cursor remembers them, `adgen_dagster.told`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import dagster as dg
from pydantic import ValidationError

from adgen_dagster.imaging.details import MAX_DETAILS_BYTES, ProductDetails
from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.sensor_base import JOB, _json_cursor, _parallel, _partition_requests, _read_json, _settings, _status
from adgen_dagster.settings import SensorSettings
from adgen_dagster.told import Told
from resources.io import encode_json
from resources.object_store import NotAnObject, ObjectInfo, ObjectStore, TooLarge, check_key
from resources.products import UPLOADS, is_image_name, product_key
from resources.store_resource import StoreResource

CATALOGS = "catalogs/"
CATALOG_SUFFIXES = (".csv", ".jsonl")
DETAIL_FIELDS = ("name", "headline", "subline", "price", "style", "palette", "seed")
SLICE = 500  # rows handled between two looks at the clock


class CatalogError(ValueError):
    """The whole catalog cannot be read (encoding, missing `file` column, too large)."""


@dataclass
class _Row:
    number: int  # 1-based data row (CSV: header not counted; JSONL: line number)
    fields: dict = field(default_factory=dict)
    error: str = ""
    file: str = ""
    pid: str = ""
    details: Optional[ProductDetails] = None
    run_key: str = ""


def _is_catalog(key: str) -> bool:
    return key.lower().endswith(CATALOG_SUFFIXES)


def parse_catalog(key: str, data: bytes) -> list[_Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text ({exc})") from None
    rows: list[_Row] = []
    if key.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "file" not in columns:
                raise CatalogError(f"no 'file' column (columns: {', '.join(columns) or 'none'})")
            reader.fieldnames = columns
            for n, raw in enumerate(reader, start=1):
                rows.append(_Row(n, {k: v for k, v in raw.items() if k is not None}))
        except csv.Error as exc:  # e.g. a field over the csv module's size limit: the rest cannot be trusted
            raise CatalogError(f"not readable as CSV after row {len(rows)} ({exc})") from None
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(_Row(n, error=f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except RecursionError:
            rows.append(_Row(n, error="not usable JSON (nested too deeply)"))
            continue
        if not isinstance(value, dict):
            rows.append(_Row(n, error=f"expected a JSON object, got {type(value).__name__}"))
            continue
        rows.append(_Row(n, {str(k).strip().lower(): v for k, v in value.items()}))
    return rows


def _validate_row(row: _Row) -> None:
    """Shape checks that need no store calls; sets row.error or file/pid/details."""
    if row.error:
        return
    file = row.fields.get("file")
    if not isinstance(file, str) or not file.strip():
        row.error = "missing 'file'"
        return
    row.file = file.strip().replace("\\", "/")
    try:
        check_key(UPLOADS + row.file)
    except ValueError:
        row.error = f"'file' {row.file!r} is not a plain path under uploads/"
        return
    if not is_image_name(row.file):
        row.error = f"'file' {row.file!r} is not an image file name"
        return
    values = {k: row.fields[k] for k in DETAIL_FIELDS if row.fields.get(k) not in (None, "")}
    try:
        row.details = ProductDetails.model_validate(values)
    except ValidationError as exc:
        row.error = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        return
    row.pid = product_id_for(row.file)
    if not is_valid_product_id(row.pid):
        row.error = f"no valid product id from {row.file!r}"


def _same_sidecar(store: ObjectStore, key: str, data: bytes) -> bool:
    """Whether the stored sidecar already holds `data`; one that is not a readable file is replaced."""
    try:
        return store.get_or_none(key, MAX_DETAILS_BYTES) == data
    except (NotAnObject, TooLarge):
        return False


def _apply_row(store: ObjectStore, catalog: str, row: _Row) -> _Row:
    """Write the sidecar and the upload record for one valid row. Never raises."""
    try:
        key = UPLOADS + row.file
        info = store.info(key)
        if info is None:
            row.error = f"file {key!r} not found in the store"
            return row
        if info.size == 0:
            row.error = f"file {key!r} is empty"
            return row
        sidecar = key + ".json"
        data = encode_json(row.details.model_dump(exclude_defaults=True))
        if not _same_sidecar(store, sidecar, data):
            store.put(sidecar, data, "application/json")
        sidecar_info = store.info(sidecar)
        record = {"upload": key, "version": info.version, "sidecar_version": sidecar_info.version if sidecar_info else "-",
                  "requested_by": f"catalog {catalog}"}
        if _read_json(store, product_key(row.pid, "upload.json")) != record:
            store.put(product_key(row.pid, "upload.json"), encode_json(record), "application/json")
    except (NotAnObject, ValueError) as exc:  # a link or a special file where the photo or its folder should be
        row.error = str(exc)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    return row


def _report_key(catalog: str) -> str:
    return catalog + ".report.json"


@dataclass
class _Catalog:
    """One unfinished catalog in this tick: its rows (parsed once per tick) and its report."""

    info: ObjectInfo
    report: dict
    rows: list[_Row] = field(default_factory=list)
    done_now: list[_Row] = field(default_factory=list)  # rows handled in this tick

    @property
    def left(self) -> int:
        return 0 if self.report.get("done") else len(self.rows) - int(self.report.get("next_row", 0))


def _open_catalog(context, store: ObjectStore, info: ObjectInfo, settings: SensorSettings) -> Optional[_Catalog]:
    """The catalog if it has rows left for its current version; a catalog that cannot be read is reported and done."""
    report = _read_json(store, _report_key(info.key))
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
        _validate_row(row)
        if not row.error and row.pid in seen:
            row.error = f"same product id {row.pid!r} as row {seen[row.pid]}"
        elif not row.error:
            seen[row.pid] = row.number
    _parallel(lambda r: _apply_row(store, cat.info.key, r) if not r.error else r, chunk, workers)
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
    told = Told(_json_cursor(context.cursor).get("told"))
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
    partitions = _partition_requests(context, (r.partition_key for r in requests))
    skip = None if requests or partitions else "no new or changed catalogs"
    cursor = json.dumps({"told": told.dump()}) if told.dump() else None
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions, skip_reason=skip, cursor=cursor)


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=_settings().catalog_interval_seconds,
    default_status=_status(),
    description="Catalog manifests (catalogs/*.csv, *.jsonl: file, name, headline, subline, price, style) "
    "set product details, register the products and request their runs; bad rows go to <catalog>.report.json.",
)
def catalog_sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
    return evaluate_catalogs(context, store.get_store(), _settings())
