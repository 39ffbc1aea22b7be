"""Which products need re-running: outputs missing, or made with other code or settings.

Every materialization records `settings_key` in its metadata: a digest of the stage, its
code version, backend, model id and parameters (`stage_runner.settings_key`, no
input digests). A product is stale when, for any asset, the settings key of its latest
materialization differs from the key the current settings give, and missing when an
asset has no materialization for it at all.

Reading the state costs two queries per asset whatever the catalog size: the latest
materialization's storage id per partition (`get_latest_storage_id_by_partition`, an
index lookup), then those records by storage id (`fetch_materializations` with
`AssetRecordsFilter(storage_ids=...)`).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Sequence

import dagster as dg
from dagster._core.events import DagsterEventType

from adgen_dagster.backends import default_params
from adgen_dagster.settings import AdgenSettings, get_settings
from adgen_dagster.stage_runner import settings_key
from adgen_dagster.stages import STAGES, Stage, backend_for, params_for

# Tags Dagster itself puts on a run over a range of partitions (backfills do the same).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def current_settings_keys(settings: AdgenSettings | None = None, stages: Sequence[Stage] = STAGES) -> dict[str, str]:
    """{asset key: the settings key a materialization made now would record}.

    What the runner records for each stage (stage name, version, params from the
    settings, backend), so a default run's metadata matches these keys exactly.
    """
    s = settings or get_settings()
    keys: dict[str, str] = {}
    for stage in stages:
        backend = backend_for(stage, s)
        own = default_params(stage.backend, backend, s) if stage.backend else None
        key = settings_key(stage.name, stage.version, params_for(stage, s), backend, own)
        keys.update({asset: key for asset in stage.asset_keys})
    return keys


def latest_settings_keys(instance: dg.DagsterInstance, asset: str, pids: Iterable[str]) -> dict[str, str]:
    """{pid: settings_key of the latest materialization} for the products that have one."""
    key = dg.AssetKey(asset)
    ids = instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION, set(pids))
    if not ids:
        return {}
    out: dict[str, str] = {}
    id_list = sorted(ids.values())
    for start in range(0, len(id_list), 500):
        chunk = id_list[start:start + 500]
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)).records
        for rec in records:
            mat = rec.asset_materialization
            if mat is None or mat.partition is None:
                continue
            md = mat.metadata.get("settings_key")
            out[mat.partition] = str(md.value) if md is not None else ""
    return out


def stale_products(
    instance: dg.DagsterInstance, pids: Sequence[str], settings: AdgenSettings | None = None,
) -> dict[str, str]:
    """{pid: why} for every product that needs a run, in the order of `pids`."""
    reasons: dict[str, list[str]] = {}
    for asset, current in current_settings_keys(settings).items():
        latest = latest_settings_keys(instance, asset, pids)
        for pid in pids:
            if pid not in latest:
                reasons.setdefault(pid, []).append(f"{asset} missing")
            elif latest[pid] != current:
                reasons.setdefault(pid, []).append(f"{asset} stale")
    return {pid: ", ".join(reasons[pid]) for pid in pids if pid in reasons}


def contiguous_batches(order: Sequence[str], selected: Iterable[str], batch_size: int) -> Iterator[list[str]]:
    """The selected keys as runs of neighbours in `order`, each cut to at most `batch_size`.

    A run over a partition range covers every partition between its two ends, so a batch
    may only hold keys that are next to each other in the partitions' order.
    """
    chosen = set(selected)
    batch: list[str] = []
    for key in order:
        if key in chosen and len(batch) < batch_size:
            batch.append(key)
            continue
        if batch:
            yield batch
        batch = [key] if key in chosen else []
    if batch:
        yield batch


def run_tags_for_batch(batch: Sequence[str]) -> Mapping[str, str]:
    return {RANGE_START_TAG: batch[0], RANGE_END_TAG: batch[-1]}
