"""What the upload sensor already requested: so that a tick works in proportion to what changed.

The memory maps each upload key the sensor has dealt with to the version it dealt with,

    {"uploads/shoe.jpg": "<image version>:<sidecar version or ->", ...}

and lives in the Dagster instance (its key-value store), next to the runs it stands for: a
fresh instance has no runs, and no memory, so every upload is requested again. It is far too
big for a sensor cursor (which Dagster copies into every tick's record): 100,000 uploads are
about 6 MB of JSON, 1 MB stored compressed. A tick that changes nothing writes nothing.

Writes are safe against a tick that fails after writing: each change is written as a new
generation, in one of two slots, and the cursor that Dagster stores with the tick's run
requests names the generation to read. A tick whose run requests were never committed
leaves the cursor, and so the generation in force, where it was; its changes are simply
found again. A generation is marked committed (`commit`) once a later tick starts from a
cursor naming it, or by whoever launched its runs itself (`make demo`); a tick without a
cursor (the first one, a reset sensor, `make ui` after `make demo`) reads the last committed
generation. The code server keeps the decoded map between ticks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import zlib
from typing import Optional

import dagster as dg

_PREFIX = "adgen/upload_sensor/memory"
_LATEST = f"{_PREFIX}/latest"
_lock = threading.Lock()
_decoded: dict[str, dict[str, str]] = {}  # digest of the stored value -> its map (the last one read)


def _slot(generation: int) -> str:
    return f"{_PREFIX}/{generation % 2}"


def commit(instance: dg.DagsterInstance, generation: int) -> None:
    """Mark `generation` as the one in force: its run requests were committed."""
    storage = instance.run_storage
    if generation and storage.get_cursor_values({_LATEST}).get(_LATEST) != str(generation):
        storage.set_cursor_values({_LATEST: str(generation)})


def load(instance: dg.DagsterInstance, generation: Optional[int]) -> tuple[int, dict[str, str]]:
    """(generation, map): the cursor's generation, else the last committed one; (0, {}) if none.

    The map is shared with later calls (it is decoded once per stored value): read it, never
    change it; `save` a new one."""
    storage = instance.run_storage
    if generation is None:
        latest = storage.get_cursor_values({_LATEST}).get(_LATEST)
        generation = int(latest) if latest and latest.isdigit() else 0
    if generation == 0:
        return 0, {}
    raw = storage.get_cursor_values({_slot(generation)}).get(_slot(generation)) or ""
    key = hashlib.sha1(raw.encode()).hexdigest()
    with _lock:
        if key in _decoded:
            return generation, _decoded[key]
    try:
        doc = json.loads(zlib.decompress(base64.b64decode(raw))) if raw else {}
    except (ValueError, zlib.error):
        doc = {}
    if doc.get("generation") != generation:  # the slot was overwritten: start again from nothing
        return 0, {}
    memory = doc.get("uploads", {})
    with _lock:
        _decoded.clear()
        _decoded[key] = memory
    return generation, memory


def save(instance: dg.DagsterInstance, generation: int, memory: dict[str, str]) -> int:
    """Write `memory` as generation `generation + 1` (not yet committed); returns it, for the cursor."""
    new = generation + 1
    raw = base64.b64encode(zlib.compress(json.dumps({"generation": new, "uploads": memory},
                                                   separators=(",", ":")).encode(), 1)).decode()
    instance.run_storage.set_cursor_values({_slot(new): raw})
    with _lock:
        _decoded.clear()
        _decoded[hashlib.sha1(raw.encode()).hexdigest()] = dict(memory)
    return new
