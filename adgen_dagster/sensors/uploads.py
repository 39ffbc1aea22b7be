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
store read, no run request, no log line); only new and changed uploads are, so a tick's
work beyond the listing is in proportion to what changed, and it logs counts, not keys.
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
from typing import Optional

import dagster as dg

from adgen_dagster.partitions import products_partitions
from adgen_dagster.sensors import upload_memory
from adgen_dagster.sensors.base import json_cursor, parallel, sensor_settings, store_sensor
from adgen_dagster.sensors.told import Told
from adgen_dagster.sensors.upload_batches import Wanted, plan
from adgen_dagster.sensors.upload_checks import Outcome, check_upload, newest_per_product, unchanged_since
from adgen_dagster.settings import SensorSettings, get_settings
from resources.object_store import ObjectStore, shown
from resources.products import UPLOADS


def _upload_cursor(raw: Optional[str]) -> dict:
    cur = json_cursor(raw)
    start, memory = cur.get("start_after"), cur.get("memory")
    return {"start_after": start if isinstance(start, str) else None, "passes": int(cur.get("passes") or 0),
            "memory": memory if isinstance(memory, int) else None}


def evaluate_uploads(context: dg.SensorEvaluationContext, store: ObjectStore, settings: SensorSettings) -> dg.SensorResult:
    cursor = _upload_cursor(context.cursor)
    told = Told(json_cursor(context.cursor).get("told"))
    if cursor["memory"] is not None:  # Dagster stored this cursor: its generation's runs were requested
        upload_memory.commit(context.instance, cursor["memory"])
    generation, memory = upload_memory.load(context.instance, cursor["memory"])
    started = time.monotonic()
    outcomes: list[Outcome] = []
    listed = unchanged = 0
    listed_keys: set[str] = set()
    whole_pass = cursor["start_after"] is None
    pages = store.list_pages(UPLOADS, start_after=cursor["start_after"], page_size=settings.page_size)
    for _ in range(settings.pages_per_tick):
        page = next(pages)
        listed += len(page.objects) + len(page.refused)
        outcomes += [Outcome(r.key, skip=r.reason) for r in page.refused]  # links, FIFOs, odd names: never read
        by_key = {o.key: o for o in page.objects}
        listed_keys.update(by_key)
        page_end = page.objects[-1].key if page.objects and page.next_start_after is not None else None
        candidates, shadowed = newest_per_product(page.objects)
        outcomes += shadowed
        changed = []
        for o in candidates:
            same, sidecar = unchanged_since(store, o, memory, by_key, page_end)
            if same:
                unchanged += 1
            else:
                changed.append((o, sidecar))
        outcomes += parallel(lambda c: check_upload(store, c[0], by_key, page_end, c[1]), changed, settings.workers)
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

    new_keys, requests = (plan(list(wanted.values()), context.instance.get_dynamic_partitions(products_partitions.name),
                               get_settings().batch_size) if wanted else ([], []))
    memory_generation = (upload_memory.save(context.instance, generation, remembered) if remembered != memory
                         else generation)
    registered = sum(o.registered for o in outcomes)
    context.log.info(f"listed {listed} objects under {UPLOADS} in {time.monotonic() - started:.2f}s: {unchanged} unchanged, "
                     f"{len(wanted)} new or changed in {len(requests)} run request(s), {registered} registered, "
                     f"{skipped} ignored (each reason logged once), {errors} errors; next tick starts after {shown(cursor['start_after'] or '')!r}")
    partitions = [products_partitions.build_add_request(new_keys)] if new_keys else []
    skip = None if requests else f"no uploads to process among {listed} objects in {store.uri('uploads')}"
    state = {**cursor, "memory": memory_generation, **({"told": told.dump()} if told.dump() else {})}
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions,
                           cursor=json.dumps(state), skip_reason=skip)


upload_sensor = store_sensor(
    "upload_sensor", evaluate_uploads, sensor_settings().interval_seconds,
    "New or changed photos under uploads/ (and their <file>.json details) become product "
    "partitions and pipeline runs; pages through large prefixes across ticks.",
)
