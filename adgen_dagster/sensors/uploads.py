"""The upload sensor: new and changed photos under `uploads/` become product partitions and runs.

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
store read, no run request, no log line, no new object); only new and changed uploads are,
so a tick's work beyond the listing is in proportion to what changed, and it logs counts,
not keys. (The local store's listing remembers what it built per file, too: an unchanged
file costs one `stat` and a look-up.)
The new products of a tick, and re-uploaded neighbours, run in batches
(`upload_batches`): ranged runs of up to `ADGEN_BATCH_SIZE` products, each with a run key
derived from its members' versions, so each upload version runs once.

Per object (each judged alone, `upload_checks`): sidecars (`<file>.json`) and other JSON are
skipped silently; other non-images, empty objects and names that give no valid product id are
skipped with a logged reason; an error on one object is logged and the tick goes on. Full decoding is
left to `product_image`, which fails that product's partition with a readable message
(a corrupt JPEG still gets its run). `products/<pid>/upload.json` is rewritten only when
the upload behind the product changed. Two uploads with the same product id (`shoe.jpg`
and `shoe.png`): the one written into the store last wins (`ObjectInfo.modified`: the
upload time on S3; locally the later of the file's modification and change times, so a
copy that kept an old file time still counts as new; ties: the greater key), the other is
skipped with a logged reason.

Names the store lists but will not read (links, FIFOs, sockets, names no key can hold:
`ListPage.refused`) and the objects skipped for a reason are reported once: the cursor
also holds `"told"`, short digests of what was already said (`sensors.told`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Optional

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.sensors import upload_memory
from adgen_dagster.sensors.base import json_cursor, parallel, StoreSensor
from adgen_dagster.sensors.told import Told
from adgen_dagster.sensors.upload_batches import Wanted, plan
from adgen_dagster.sensors.upload_checks import Outcome, changed_only, check_upload, newest_per_product
from adgen_dagster.settings import SensorSettings, get_settings
from resources.object_store import ObjectInfo, ObjectStore, shown
from resources.products import UPLOADS


def _upload_cursor(raw: Optional[str]) -> dict:
    cur = json_cursor(raw)
    start, memory = cur.get("start_after"), cur.get("memory")
    return {"start_after": start if isinstance(start, str) else None, "passes": int(cur.get("passes") or 0),
            "memory": memory if isinstance(memory, int) else None}


@dataclass
class _Scan:
    """What one tick's pages held."""

    cursor: dict  # where the next tick starts
    outcomes: list[Outcome] = field(default_factory=list)  # every object looked at: new, changed, not an upload
    pages: list[dict[str, ObjectInfo]] = field(default_factory=list)  # the listed objects, page by page
    listed: int = 0
    unchanged: int = 0
    in_memory: int = 0  # listed objects the memory holds (when all it holds: nothing was deleted)
    whole_pass: bool = False  # the tick listed every upload, from the first key to the last


def _scan(store: ObjectStore, cursor: dict, memory: dict[str, str], settings: SensorSettings, started: float) -> _Scan:
    """Up to `pages_per_tick` pages from the cursor on: unchanged uploads counted, the others judged."""
    scan = _Scan(cursor)
    pages = store.list_pages(UPLOADS, start_after=cursor["start_after"], page_size=settings.page_size)
    for _ in range(settings.pages_per_tick):
        page = next(pages)
        scan.listed += len(page.objects) + len(page.refused)
        scan.outcomes += [Outcome(r.key, skip=r.reason) for r in page.refused]  # links, FIFOs, odd names: never read
        by_key = {o.key: o for o in page.objects}
        scan.pages.append(by_key)
        scan.in_memory += len(by_key.keys() & memory.keys())
        page_end = page.objects[-1].key if page.objects and page.next_start_after is not None else None
        candidates, shadowed = newest_per_product(page.objects)
        scan.outcomes += shadowed
        changed = changed_only(store, candidates, memory, by_key, page_end)
        scan.unchanged += len(candidates) - len(changed)
        scan.outcomes += parallel(lambda c: check_upload(store, c[0], by_key, page_end, c[1]), changed, settings.workers)
        if page.next_start_after is None:  # pass complete: start over next tick to see re-uploads
            scan.whole_pass = cursor["start_after"] is None
            scan.cursor = {"start_after": None, "passes": cursor["passes"] + 1}
            return scan
        scan.cursor = {**scan.cursor, "start_after": page.next_start_after}
        if time.monotonic() - started > settings.tick_seconds:
            break
    return scan


def _remembered(memory: dict[str, str], updates: dict[str, str], scan: _Scan) -> Optional[dict[str, str]]:
    """The memory after this tick; None when it is unchanged (then nothing is written)."""
    changes = {k: v for k, v in updates.items() if memory.get(k) != v}
    deleted = scan.whole_pass and scan.in_memory < len(memory)  # a whole pass in one tick: forget deleted uploads
    if not changes and not deleted:
        return None
    remembered = {**memory, **changes}
    if deleted:
        listed = set().union(*scan.pages)
        remembered = {k: v for k, v in remembered.items() if k in listed}
    return remembered


def evaluate_uploads(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    cursor = _upload_cursor(context.cursor)
    told = Told(json_cursor(context.cursor).get("told"))
    if cursor["memory"] is not None:  # Dagster stored this cursor: its generation's runs were requested
        upload_memory.commit(context.instance, cursor["memory"])
    generation, memory = upload_memory.load(context.instance, cursor["memory"])
    started = time.monotonic()
    scan = _scan(store, cursor, memory, settings, started)

    wanted: dict[str, Wanted] = {}
    updates: dict[str, str] = {}
    errors = skipped = 0
    for o in scan.outcomes:
        if o.error:
            errors += 1
            context.log.error(f"upload {shown(o.key)!r}: {o.error}")
        elif o.skip:
            skipped += not o.quiet
            if not o.quiet and told.first(o.key, o.skip):  # once, not on every pass over the listing
                context.log.info(f"upload {shown(o.key)!r} skipped: {o.skip}")
            if o.seen:  # requested by a catalog: nothing to do until it changes
                updates[o.key] = o.seen
        elif o.run_key and o.pid not in wanted:
            wanted[o.pid] = Wanted(o.pid, o.key, o.run_key)
            updates[o.key] = o.seen
    remembered = _remembered(memory, updates, scan)
    if remembered is not None:
        generation = upload_memory.save(context.instance, generation, remembered)
    new_keys, requests = (plan(list(wanted.values()), context.instance.get_dynamic_partitions(products_partitions.name),
                               get_settings().batch_size) if wanted else ([], []))

    registered = sum(o.registered for o in scan.outcomes)
    start_after = scan.cursor["start_after"]
    context.log.info(f"listed {scan.listed} objects under {UPLOADS} in {time.monotonic() - started:.2f}s: {scan.unchanged} unchanged, "
                     f"{len(wanted)} new or changed in {len(requests)} run request(s), {registered} registered, "
                     f"{skipped} ignored (each reason logged once), {errors} errors; next tick starts after {shown(start_after or '')!r}")
    state = {**scan.cursor, "memory": generation, **({"told": told.dump()} if told.dump() else {})}
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[products_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(state),
        skip_reason=None if requests else f"no uploads to process among {scan.listed} objects in {store.uri('uploads')}",
    )


UPLOAD_SENSOR = StoreSensor(
    "upload_sensor", evaluate_uploads, "interval_seconds",
    "New or changed photos under uploads/ (and their <file>.json details) become product "
    "partitions and pipeline runs; pages through large prefixes across ticks.",
)
