"""Sensors: new uploads and catalog manifests become product partitions and runs.

`upload_sensor` pages through `uploads/` across ticks. Its cursor is JSON:

    {"start_after": "<last key read>" | null, "passes": <completed listing passes>,
     "memory": <generation of the sensor's memory>}

Each tick reads at most `sensor.pages_per_tick` pages of `sensor.page_size` objects (and
stops early after `sensor.tick_seconds`), so a prefix of any size never pushes a tick near
Dagster's sensor timeout. When a pass reaches the end of the listing the next tick starts
again from the first key: that is how re-uploads are seen.

The sensor is incremental: its memory (`upload_memory`, kept in the instance) holds, per
upload, the image and sidecar versions it already requested a run for (version = ETag on
S3, mtime+size locally). A listed upload whose versions match is not looked at again (no
store read, no run request, no log line); only new and changed uploads are, so a tick's
work beyond the listing is in proportion to what changed, and it logs counts, not keys.
The new products of a tick, and re-uploaded neighbours, run in batches
(`upload_batches`): ranged runs of up to `ADGEN_BATCH_SIZE` products, each with a run key
derived from its members' versions, so each upload version runs once.

Per object (each judged alone): sidecars (`<file>.json`) and other JSON are skipped silently; other
non-images, empty objects and names that give no valid product id are skipped with a
logged reason; an error on one object is logged and the tick goes on. Full decoding is
left to `product_image`, which fails that product's partition with a readable message
(a corrupt JPEG still gets its run). `products/<pid>/upload.json` is rewritten only when
the upload behind the product changed. Two uploads with the same product id (`shoe.jpg`
and `shoe.png`): the one written into the store last wins (`ObjectInfo.modified`: the
upload time on S3; locally the later of the file's modification and change times, so a
copy that kept an old file time still counts as new; ties: the greater key), the other is
skipped with a logged reason.

Names the store lists but will not read (links, FIFOs, sockets, names no key can hold:
`ListPage.refused`) and the objects skipped for a reason are reported once: the cursor
also holds `"told"`, short digests of what was already said (`adgen_dagster.told`).

`catalog_sensor` (catalog manifests under `catalogs/`) lives in `adgen_dagster.catalogs`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterable, Optional

import dagster as dg

from adgen_dagster import upload_memory
from adgen_dagster.catalogs import catalog_sensor
from adgen_dagster.partitions import products_partitions
from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.sensor_base import JOB, PARTITIONS, _json_cursor, _parallel, _read_json, _settings, _status
from adgen_dagster.settings import SensorSettings, get_settings
from adgen_dagster.upload_batches import Wanted, plan
from adgen_dagster.told import Told
from resources.object_store import NotAnObject, ObjectInfo, ObjectStore, shown
from resources.products import UPLOADS, is_image_name, product_key, register_upload
from resources.store_resource import StoreResource

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
    seen: str = ""  # "<image version>:<sidecar version>" to remember once this outcome stands


def _upload_cursor(raw: Optional[str]) -> dict:
    cur = _json_cursor(raw)
    start, memory = cur.get("start_after"), cur.get("memory")
    return {"start_after": start if isinstance(start, str) else None, "passes": int(cur.get("passes") or 0),
            "memory": memory if isinstance(memory, int) else None}


def _check_upload(store: ObjectStore, info: ObjectInfo, page: dict[str, ObjectInfo], page_end: Optional[str],
                  sidecar_version: Optional[str] = None) -> _Outcome:
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
        if sidecar_version is None:
            sidecar_version = _sidecar_version(store, info.key + ".json", page, page_end)
        out.seen = f"{info.version}:{sidecar_version}"
        record = _read_json(store, product_key(pid, "upload.json"))
        if record and record.get("upload") != info.key:
            other = _current(store, str(record.get("upload")))
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


def _current(store: ObjectStore, key: str) -> Optional[ObjectInfo]:
    """The upload a product record points at, if it is still a readable object."""
    try:
        return store.info(key)
    except (ValueError, NotAnObject):
        return None


def _sidecar_version(store: ObjectStore, key: str, page: dict[str, ObjectInfo], page_end: Optional[str]) -> str:
    """The sidecar's version for the run key; "-" when there is none. A sidecar that is not
    a file (a FIFO, a link) is left to `product_image`, which fails that product naming it."""
    if key in page:
        return page[key].version
    if page_end is None or key <= page_end:
        return "-"  # the listing covered that key: there is no sidecar (or it is not a file)
    try:
        sidecar = store.info(key)  # it would be on a later page
    except NotAnObject:
        return "not-a-file"
    return sidecar.version if sidecar is not None else "-"


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


def _unchanged(store: ObjectStore, o: ObjectInfo, memory: dict[str, str], page: dict[str, ObjectInfo],
               page_end: Optional[str]) -> tuple[bool, Optional[str]]:
    """(True, _) when the memory holds this image with the same sidecar; else (False, sidecar version)."""
    known = memory.get(o.key)
    if known is None or not known.startswith(o.version + ":"):
        return False, None
    sidecar = _sidecar_version(store, o.key + ".json", page, page_end)
    return known == f"{o.version}:{sidecar}", sidecar


def evaluate_uploads(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    cursor = _upload_cursor(context.cursor)
    told = Told(_json_cursor(context.cursor).get("told"))
    if cursor["memory"] is not None:  # Dagster stored this cursor: its generation's runs were requested
        upload_memory.commit(context.instance, cursor["memory"])
    generation, memory = upload_memory.load(context.instance, cursor["memory"])
    started = time.monotonic()
    outcomes: list[_Outcome] = []
    listed = unchanged = 0
    listed_keys: set[str] = set()
    whole_pass = cursor["start_after"] is None
    pages = store.list_pages(UPLOADS, start_after=cursor["start_after"], page_size=settings.page_size)
    for _ in range(settings.pages_per_tick):
        page = next(pages)
        listed += len(page.objects) + len(page.refused)
        outcomes += [_Outcome(r.key, skip=r.reason) for r in page.refused]  # links, FIFOs, odd names: never read
        by_key = {o.key: o for o in page.objects}
        listed_keys.update(by_key)
        page_end = page.objects[-1].key if page.objects and page.next_start_after is not None else None
        candidates, shadowed = _newest_per_product(page.objects)
        outcomes += shadowed
        changed = []
        for o in candidates:
            same, sidecar = _unchanged(store, o, memory, by_key, page_end)
            if same:
                unchanged += 1
            else:
                changed.append((o, sidecar))
        outcomes += _parallel(lambda c: _check_upload(store, c[0], by_key, page_end, c[1]), changed, settings.workers)
        if page.next_start_after is None:  # pass complete: start over next tick to see re-uploads
            cursor = {"start_after": None, "passes": cursor["passes"] + 1}
            break
        cursor = {**cursor, "start_after": page.next_start_after}
        if time.monotonic() - started > settings.tick_seconds:
            whole_pass = False
            break
    else:
        whole_pass = False

    wanted: dict[str, Wanted] = {}
    remembered = dict(memory)
    errors = skipped = 0
    for o in outcomes:
        if o.error:
            errors += 1
            context.log.error(f"upload {shown(o.key)!r}: {o.error}")
        elif o.skip:
            skipped += not o.quiet
            if not o.quiet and told.first(o.key, o.skip):  # once, not on every pass over the listing
                context.log.info(f"upload {shown(o.key)!r} skipped: {o.skip}")
            if o.seen:  # requested by a catalog: nothing to do until it changes
                remembered[o.key] = o.seen
        elif o.run_key and o.pid not in wanted:
            wanted[o.pid] = Wanted(o.pid, o.key, o.run_key)
            remembered[o.key] = o.seen
    if whole_pass and cursor["start_after"] is None:  # a whole pass in one tick: forget deleted uploads
        remembered = {k: v for k, v in remembered.items() if k in listed_keys}

    new_keys, requests = (plan(list(wanted.values()), context.instance.get_dynamic_partitions(PARTITIONS),
                               get_settings().batch_size) if wanted else ([], []))
    memory_generation = (upload_memory.save(context.instance, generation, remembered) if remembered != memory
                         else generation)
    registered = sum(o.registered for o in outcomes)
    context.log.info(f"listed {listed} objects under {UPLOADS} in {time.monotonic() - started:.2f}s: {unchanged} unchanged, "
                     f"{len(wanted)} new or changed in {len(requests)} run request(s), {registered} registered, "
                     f"{skipped} ignored (each reason logged once), {errors} errors; next tick starts after {shown(cursor['start_after'] or '')!r}")
    partitions = [dg.AddDynamicPartitionsRequest(PARTITIONS, new_keys)] if new_keys else []
    skip = None if requests else f"no uploads to process among {listed} objects in {store.uri('uploads')}"
    state = {**cursor, "memory": memory_generation, **({"told": told.dump()} if told.dump() else {})}
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions,
                           cursor=json.dumps(state), skip_reason=skip)


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=_settings().interval_seconds,
    default_status=_status(),
    description="New or changed photos under uploads/ (and their <file>.json details) become product "
    "partitions and pipeline runs; pages through large prefixes across ticks.",
)
def upload_sensor(context: dg.SensorEvaluationContext, store: StoreResource) -> dg.SensorResult:
    return evaluate_uploads(context, store.get_store(), _settings())


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
