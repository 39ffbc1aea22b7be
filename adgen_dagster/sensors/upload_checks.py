"""One listed upload, judged alone: a run to request, a reason to skip it, or an error.

Sidecars (`<file>.json`) and other JSON are skipped silently; other non-images, empty
objects and names that give no valid product id are skipped with a reason; an error on one
object is caught and reported, never raised. `products/<pid>/upload.json` is rewritten only
when the upload behind the product changed. Two uploads with the same product id: the one
written into the store last wins (`ObjectInfo.modified`, ties: the greater key).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.sensors.base import read_json
from resources.object_store import NotAnObject, ObjectInfo, ObjectStore
from resources.products import UPLOADS, is_image_name, product_key, register_upload


@dataclass
class Outcome:
    key: str
    pid: str = ""
    run_key: str = ""
    skip: str = ""  # reason; logged at info level
    quiet: bool = False  # skipped without a log line (sidecars)
    error: str = ""
    registered: bool = False
    seen: str = ""  # "<image version>:<sidecar version>" to remember once this outcome stands


def check_upload(store: ObjectStore, info: ObjectInfo, page: dict[str, ObjectInfo], page_end: Optional[str],
                  sidecar_version: Optional[str] = None) -> Outcome:
    """One listed object -> a run request, or a reason to skip it. Never raises."""
    out = Outcome(info.key)
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
            sidecar_version = sidecar_version_of(store, info.key + ".json", page, page_end)
        out.seen = f"{info.version}:{sidecar_version}"
        record = read_json(store, product_key(pid, "upload.json"))
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


def sidecar_version_of(store: ObjectStore, key: str, page: dict[str, ObjectInfo], page_end: Optional[str]) -> str:
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


@lru_cache(maxsize=1 << 18)
def _name_pid(key: str) -> Optional[str]:
    """The product id an image's key gives (None for other names). A listing shows the same
    names pass after pass, so the answers are remembered (a bounded cache)."""
    if not is_image_name(key):
        return None
    try:
        return product_id_for(key[len(UPLOADS):])
    except Exception:  # reported by check_upload
        return None


def newest_per_product(objects: list[ObjectInfo]) -> tuple[list[ObjectInfo], list[Outcome]]:
    """Within one page, keep only the newest image of each product id (no racing writes)."""
    pids = [None if o.size == 0 else _name_pid(o.key) for o in objects]
    named = [pid for pid in pids if pid is not None]
    if len(set(named)) == len(named):  # no product with two uploads on this page: the common case
        return objects, []
    best: dict[str, ObjectInfo] = {}
    for info, pid in zip(objects, pids):
        if pid is not None and (pid not in best or (info.modified, info.key) > (best[pid].modified, best[pid].key)):
            best[pid] = info
    keep, shadowed = [], []
    for info, pid in zip(objects, pids):
        if pid is None or best[pid] is info:
            keep.append(info)
        else:
            shadowed.append(Outcome(info.key, pid=pid, skip=f"product id {pid!r} already belongs to the newer upload {best[pid].key!r}"))
    return keep, shadowed


def changed_only(store: ObjectStore, candidates: list[ObjectInfo], memory: dict[str, str], page: dict[str, ObjectInfo],
                 page_end: Optional[str]) -> list[tuple[ObjectInfo, Optional[str]]]:
    """The candidates the memory does not hold with the same image and sidecar versions, each with
    its sidecar's version when it was looked up. The loop every listed upload goes through: an
    unchanged one costs a few dictionary look-ups and no store call."""
    changed = []
    for o in candidates:
        known, image = memory.get(o.key), o.version + ":"
        if known is None or not known.startswith(image):  # new, or a new image: its sidecar is looked up later
            changed.append((o, None))
            continue
        sidecar_key = o.key + ".json"
        sidecar = page.get(sidecar_key)
        if sidecar is not None:
            version = sidecar.version
        elif page_end is None or sidecar_key <= page_end:
            version = "-"  # the listing covered that key: there is no sidecar
        else:
            version = sidecar_version_of(store, sidecar_key, page, page_end)
        if known != image + version:
            changed.append((o, version))
    return changed
