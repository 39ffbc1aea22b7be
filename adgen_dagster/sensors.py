"""Sensors: new uploads and catalog manifests become product partitions and runs.

`upload_sensor` pages through `uploads/` across ticks. Its cursor is JSON:

    {"start_after": "<last key read>" | null, "passes": <completed listing passes>}

Each tick reads at most `sensor.pages_per_tick` pages of `sensor.page_size` objects (and
stops early after `sensor.tick_seconds`), so a prefix of any size never pushes a tick near
Dagster's sensor timeout. When a pass reaches the end of the listing the next tick starts
again from the first key: that is how re-uploads are seen. Re-listing is safe because
the run key is tied to the object's version,

    run_key = "<product id>:<image version>:<sidecar version or ->"

(version = ETag on S3, mtime+size locally) and Dagster launches a run key only once per
sensor: the same object never runs twice, a re-upload or a changed sidecar runs again.

Per object: sidecars (`<file>.json`) and other JSON are skipped silently; other
non-images, empty objects and names that give no valid product id are skipped with a
logged reason; an error on one object is logged and the tick goes on. Full decoding is
left to `product_image`, which fails that product's partition with a readable message
(a corrupt JPEG still gets its run). `products/<pid>/upload.json` is rewritten only when
the upload behind the product changed. Two uploads with the same product id (`shoe.jpg`
and `shoe.png`): the most recently written one wins (ties: the greater key), the other
is skipped with a logged reason.

`catalog_sensor` watches `catalogs/*.csv` and `catalogs/*.jsonl` (columns/fields: file,
name, headline, subline, price, style; optional palette, seed). Each valid row's details
are written as the sidecar `uploads/<file>.json` (the row replaces any earlier details),
the upload is registered, all valid rows of a tick are added as partitions in one
request, and one run is requested per product with run key
`catalog:<catalog key>:<catalog version>:<pid>`. Bad rows are logged with the catalog and
row number and listed in `catalogs/<file>.report.json`, which is also the stored marker:
a catalog is processed once per version, `sensor.catalog_rows_per_tick` rows per tick.
The upload sensor does not request a second run for a product whose current image and
sidecar versions a catalog already requested.
"""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

import dagster as dg
from pydantic import ValidationError

from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.partitions import products_partitions
from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.settings import SensorSettings, get_settings
from resources.io import encode_json
from resources.object_store import ObjectInfo, ObjectStore, check_key
from resources.products import UPLOADS, is_image_name, product_key, register_upload
from resources.store_resource import StoreResource

JOB = "adgen_pipeline"
CATALOGS = "catalogs/"
CATALOG_SUFFIXES = (".csv", ".jsonl")
DETAIL_FIELDS = ("name", "headline", "subline", "price", "style", "palette", "seed")
PARTITIONS = products_partitions.name


def _settings() -> SensorSettings:
    return get_settings().sensor


def _status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if _settings().running else dg.DefaultSensorStatus.STOPPED


def _read_json(store: ObjectStore, key: str) -> Optional[dict]:
    raw = store.get_or_none(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _parallel(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """`fn` over `items` in order; store calls are I/O bound (S3 round trips)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def _known_partitions(context: dg.SensorEvaluationContext) -> set[str]:
    return set(context.instance.get_dynamic_partitions(PARTITIONS))


def _partition_requests(context, pids: Iterable[str]) -> list:
    known = _known_partitions(context)
    new = list(dict.fromkeys(p for p in pids if p not in known))
    return [dg.AddDynamicPartitionsRequest(PARTITIONS, new)] if new else []


# --- upload sensor -----------------------------------------------------------------------


@dataclass
class _Outcome:
    key: str
    pid: str = ""
    run_key: str = ""
    skip: str = ""  # reason; logged at info level
    quiet: bool = False  # skipped without a log line (sidecars)
    error: str = ""
    registered: bool = False


def _upload_cursor(raw: Optional[str]) -> dict:
    try:
        cur = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        cur = {}
    if not isinstance(cur, dict):
        cur = {}
    start = cur.get("start_after")
    return {"start_after": start if isinstance(start, str) else None, "passes": int(cur.get("passes") or 0)}


def _check_upload(store: ObjectStore, info: ObjectInfo, page: dict[str, ObjectInfo], page_end: Optional[str]) -> _Outcome:
    """One listed object -> a run request, or a reason to skip it. Never raises."""
    out = _Outcome(info.key)
    try:
        name = info.key[len(UPLOADS):]
        if name.lower().endswith(".json"):
            out.skip, out.quiet = "details sidecar", True
            return out
        if not is_image_name(info.key):
            out.skip = "not an image (unsupported file extension)"
            return out
        if info.size == 0:
            out.skip = "empty file"
            return out
        pid = out.pid = product_id_for(name)
        if not is_valid_product_id(pid):
            out.skip = f"no valid product id from the name (got {pid!r})"
            return out
        sidecar_key = info.key + ".json"
        if sidecar_key in page:
            sidecar = page[sidecar_key]
        elif page_end is None or sidecar_key <= page_end:
            sidecar = None  # the listing covered that key: there is no sidecar
        else:
            sidecar = store.info(sidecar_key)  # it would be on a later page
        sidecar_version = sidecar.version if sidecar is not None else "-"
        record = _read_json(store, product_key(pid, "upload.json"))
        if record and record.get("upload") != info.key:
            other = store.info(str(record.get("upload")))
            if other is not None and (other.modified, other.key) > (info.modified, info.key):
                out.skip = f"product id {pid!r} already belongs to the newer upload {other.key!r}"
                return out
        if not record or record.get("upload") != info.key or record.get("version") != info.version:
            register_upload(store, info.key)
            out.registered = True
        elif record.get("requested_by") and record.get("sidecar_version") == sidecar_version:
            out.skip = f"run already requested by {record['requested_by']}"
            return out
        out.run_key = f"{pid}:{info.version}:{sidecar_version}"
    except Exception as exc:  # one bad object never stops the tick
        out.error = f"{type(exc).__name__}: {exc}"
    return out


def _newest_per_product(objects: list[ObjectInfo]) -> tuple[list[ObjectInfo], list[_Outcome]]:
    """Within one page, keep only the newest image of each product id (no racing writes)."""

    def pid_of(info: ObjectInfo) -> Optional[str]:
        if info.size == 0 or not is_image_name(info.key):
            return None
        try:
            return product_id_for(info.key[len(UPLOADS):])
        except Exception:  # reported by _check_upload
            return None

    pids = {o.key: pid_of(o) for o in objects}
    best: dict[str, ObjectInfo] = {}
    for info in objects:
        pid = pids[info.key]
        if pid is not None and (pid not in best or (info.modified, info.key) > (best[pid].modified, best[pid].key)):
            best[pid] = info
    keep, shadowed = [], []
    for info in objects:
        pid = pids[info.key]
        if pid is None or best[pid] is info:
            keep.append(info)
        else:
            shadowed.append(_Outcome(info.key, pid=pid, skip=f"product id {pid!r} already belongs to the newer upload {best[pid].key!r}"))
    return keep, shadowed


def evaluate_uploads(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    cursor = _upload_cursor(context.cursor)
    started = time.monotonic()
    outcomes: list[_Outcome] = []
    listed = 0
    for _ in range(settings.pages_per_tick):
        page = store.list_page(UPLOADS, start_after=cursor["start_after"], limit=settings.page_size)
        listed += len(page.objects)
        by_key = {o.key: o for o in page.objects}
        page_end = page.objects[-1].key if page.objects and page.next_start_after is not None else None
        candidates, shadowed = _newest_per_product(page.objects)
        outcomes += shadowed
        outcomes += _parallel(lambda o: _check_upload(store, o, by_key, page_end), candidates, settings.workers)
        if page.next_start_after is None:  # pass complete: start over next tick to see re-uploads
            cursor = {"start_after": None, "passes": cursor["passes"] + 1}
            break
        cursor["start_after"] = page.next_start_after
        if time.monotonic() - started > settings.tick_seconds:
            break

    requests: dict[str, dg.RunRequest] = {}
    for o in outcomes:
        if o.error:
            context.log.error(f"upload {o.key!r}: {o.error}")
        elif o.skip and not o.quiet:
            context.log.info(f"upload {o.key!r} skipped: {o.skip}")
        elif o.run_key and o.run_key not in requests:
            requests[o.run_key] = dg.RunRequest(run_key=o.run_key, partition_key=o.pid,
                                                tags={"adgen/source": "upload", "adgen/upload": o.key})
    registered = sum(o.registered for o in outcomes)
    errors = sum(bool(o.error) for o in outcomes)
    context.log.info(f"listed {listed} objects under {UPLOADS} in {time.monotonic() - started:.2f}s: "
                     f"{len(requests)} run requests, {registered} uploads registered, {errors} errors; "
                     f"next tick starts after {cursor['start_after']!r}")
    partitions = _partition_requests(context, (r.partition_key for r in requests.values()))
    skip = None if requests or partitions else f"no uploads to process among {listed} objects"
    return dg.SensorResult(run_requests=list(requests.values()), dynamic_partitions_requests=partitions,
                           cursor=json.dumps(cursor), skip_reason=skip)


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=_settings().interval_seconds,
    default_status=_status(),
    description="New or changed photos under uploads/ (and their <file>.json details) become product "
    "partitions and pipeline runs; pages through large prefixes across ticks.",
)
def upload_sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
    return evaluate_uploads(context, store.get_store(), _settings())


# --- catalog sensor ----------------------------------------------------------------------


class CatalogError(ValueError):
    """The whole catalog cannot be read (encoding, missing `file` column)."""


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
        if store.get_or_none(sidecar) != data:
            store.put(sidecar, data, "application/json")
        sidecar_info = store.info(sidecar)
        record = {"upload": key, "version": info.version, "sidecar_version": sidecar_info.version if sidecar_info else "-",
                  "requested_by": f"catalog {catalog}"}
        if _read_json(store, product_key(row.pid, "upload.json")) != record:
            store.put(product_key(row.pid, "upload.json"), encode_json(record), "application/json")
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    return row


def _report_key(catalog: str) -> str:
    return catalog + ".report.json"


def _process_catalog(context, store: ObjectStore, info: ObjectInfo, report: dict, budget: int,
                     workers: int) -> tuple[list[_Row], dict]:
    """Rows [next_row, next_row + budget) of one catalog; returns the rows done and the report."""
    try:
        rows = parse_catalog(info.key, store.get(info.key))
    except CatalogError as exc:
        context.log.error(f"catalog {info.key!r} cannot be read: {exc}")
        report.update(done=True, rows=0, error=str(exc))
        return [], report
    start = int(report.get("next_row", 0))
    chunk = rows[start:start + budget]
    seen = {r["product_id"]: r["row"] for r in report["ok"]}
    for row in chunk:
        _validate_row(row)
        if not row.error and row.pid in seen:
            row.error = f"same product id {row.pid!r} as row {seen[row.pid]}"
        elif not row.error:
            seen[row.pid] = row.number
    _parallel(lambda r: _apply_row(store, info.key, r) if not r.error else r, chunk, workers)
    for row in chunk:
        if row.error:
            context.log.warning(f"catalog {info.key!r} row {row.number}: {row.error}")
            report["failed"].append({"row": row.number, "file": row.file or row.fields.get("file"), "error": row.error})
        else:
            row.run_key = f"catalog:{info.key}:{info.version}:{row.pid}"
            report["ok"].append({"row": row.number, "file": row.file, "product_id": row.pid})
    report.update(rows=len(rows), next_row=start + len(chunk), done=start + len(chunk) >= len(rows))
    return chunk, report


def evaluate_catalogs(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    started = time.monotonic()
    budget = settings.catalog_rows_per_tick
    requests: list[dg.RunRequest] = []
    for info in store.list(CATALOGS, page_size=settings.page_size):
        if not _is_catalog(info.key):
            continue
        if budget <= 0 or time.monotonic() - started > settings.tick_seconds:
            break
        try:
            report = _read_json(store, _report_key(info.key))
            if report and report.get("catalog_version") == info.version and report.get("done"):
                continue
            if not report or report.get("catalog_version") != info.version or not isinstance(report.get("ok"), list):
                report = {"catalog": info.key, "catalog_version": info.version, "next_row": 0, "ok": [], "failed": []}
            chunk, report = _process_catalog(context, store, info, report, budget, settings.workers)
            report["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            budget -= max(1, len(chunk))
            good = [r for r in chunk if r.run_key]
            requests += [dg.RunRequest(run_key=r.run_key, partition_key=r.pid,
                                       tags={"adgen/source": "catalog", "adgen/catalog": info.key, "adgen/upload": UPLOADS + r.file})
                         for r in good]
            store.put(_report_key(info.key), encode_json(report), "application/json")  # last: the marker
            context.log.info(f"catalog {info.key!r}: rows {report['next_row'] - len(chunk) + 1}-{report['next_row']} "
                             f"of {report['rows']}: {len(good)} registered, {len(chunk) - len(good)} failed"
                             + ("" if report["done"] else "; continues next tick"))
        except Exception as exc:  # one broken catalog never stops the others
            context.log.error(f"catalog {info.key!r}: {type(exc).__name__}: {exc}")
    partitions = _partition_requests(context, (r.partition_key for r in requests))
    skip = None if requests or partitions else "no new or changed catalogs"
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions, skip_reason=skip)


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=_settings().catalog_interval_seconds,
    default_status=_status(),
    description="Catalog manifests (catalogs/*.csv, *.jsonl: file, name, headline, subline, price, style) "
    "set product details, register the products and request their runs; bad rows go to <catalog>.report.json.",
)
def catalog_sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
    return evaluate_catalogs(context, store.get_store(), _settings())


SPLIT_TAG = "adgen/split_from"


def split_requests(run: dg.DagsterRun, failure_metadata: Iterable[dict], instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One run per product of a failed batch in which some products failed (see `batch_failure`).

    Only batches that failed product by product are split (a store outage fails the step at
    once, without `failed_products`), and never a run that was itself split from one.
    """
    tags = run.tags
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if not start or not end or SPLIT_TAG in tags:
        return []
    if not any("failed_products" in md for md in failure_metadata):
        return []
    keys = instance.get_dynamic_partitions(products_partitions.name)
    if start not in keys or end not in keys:
        return []
    pids = keys[keys.index(start):keys.index(end) + 1]
    return [dg.RunRequest(run_key=f"split:{run.run_id}:{pid}", partition_key=pid, tags={SPLIT_TAG: run.run_id})
            for pid in pids]


def _failure_metadata(context: dg.RunFailureSensorContext) -> list[dict]:
    out = []
    for event in context.get_step_failure_events():
        data = getattr(event.event_specific_data, "user_failure_data", None)
        out.append({k: getattr(v, "value", v) for k, v in (getattr(data, "metadata", None) or {}).items()})
    return out


def _split_sensor():
    from adgen_dagster.jobs import adgen_pipeline

    @dg.run_failure_sensor(
        name="split_failed_batches",
        request_job=adgen_pipeline,
        default_status=_status(),
        minimum_interval_seconds=_settings().interval_seconds,
        description="A batched run (backfill, nightly refresh) in which some products failed is re-run one product per "
        "run: the good ones finish from the cache, each bad one fails alone with its own message.",
    )
    def split_failed_batches(context: dg.RunFailureSensorContext):
        requests = split_requests(context.dagster_run, _failure_metadata(context), context.instance)
        if requests:
            context.log.info(f"run {context.dagster_run.run_id}: {len(requests)} product(s) re-run one per run")
        return requests

    return split_failed_batches


split_failed_batches = _split_sensor()

SENSORS = [upload_sensor, catalog_sensor, split_failed_batches]
