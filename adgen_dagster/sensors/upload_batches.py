"""The upload sensor's run requests: products that sit next to each other run together.

Partitions added in one tick go to the end of the partition list, in the order given, so
the new products of a tick are one unbroken stretch: they run in ranged runs of up to
`ADGEN_BATCH_SIZE` products (`dagster/asset_partition_range_start` / `_end`, as a backfill's
runs), one process per run that loads its models once. Re-uploads of products already known
run by stretches of neighbours in the partition list, so scattered re-uploads are scattered
runs and a block of re-uploads is one.

Each upload version runs exactly once: a run's key is derived from the versions of its members,

    one product:  "<product id>:<image version>:<sidecar version or ->"  (as before batching)
    several:      "uploads:<sha256 of the members' keys>"

and the sensor's memory (`upload_memory`) records them, so no tick asks for them again. A
bad photo in a batch still fails alone: the step goes on with the others, and the
`split_failed_batches` sensor re-runs each product of the batch on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

SOURCE_TAGS = {"adgen/source": "upload"}


@dataclass(frozen=True)
class Wanted:
    """One product to run: its id, the upload behind it and that version's own run key."""
    pid: str
    upload: str
    key: str


def batch_run_key(members: Sequence[Wanted]) -> str:
    if len(members) == 1:
        return members[0].key
    return "uploads:" + hashlib.sha256("\n".join(sorted(m.key for m in members)).encode()).hexdigest()[:32]


def _run_request(members: list[Wanted]) -> dg.RunRequest:
    if len(members) == 1:
        m = members[0]
        return dg.RunRequest(run_key=m.key, partition_key=m.pid, tags={**SOURCE_TAGS, "adgen/upload": m.upload})
    return dg.RunRequest(run_key=batch_run_key(members), tags={
        **SOURCE_TAGS, "adgen/products": str(len(members)),
        ASSET_PARTITION_RANGE_START_TAG: members[0].pid, ASSET_PARTITION_RANGE_END_TAG: members[-1].pid,
    })


def _chunks(stretch: list[Wanted], size: int) -> list[list[Wanted]]:
    return [stretch[i:i + size] for i in range(0, len(stretch), size)]


def plan(wanted: Sequence[Wanted], known: Sequence[str], batch_size: int) -> tuple[list[str], list[dg.RunRequest]]:
    """(new partition keys in the order to add them, run requests) for the products of one tick.

    `known` is the partition list as it is now; new products are appended after it in the
    order given. A product may be wanted once per tick (the caller keeps the newest upload).
    """
    position = {pid: i for i, pid in enumerate(known)}
    new = [w for w in wanted if w.pid not in position]
    old = sorted((w for w in wanted if w.pid in position), key=lambda w: position[w.pid])
    stretches: list[list[Wanted]] = []
    for w in old:
        if stretches and position[stretches[-1][-1].pid] == position[w.pid] - 1:
            stretches[-1].append(w)
        else:
            stretches.append([w])
    if new:
        stretches.append(new)  # appended together: neighbours at the end of the list
    requests = [_run_request(chunk) for stretch in stretches for chunk in _chunks(stretch, max(1, batch_size))]
    return [w.pid for w in new], requests
