"""The content-addressed result cache: repeated work is free.

A stage's result is identified by sha256 over (stage, stage version, backend, model id,
parameters, input digests). An entry is a manifest `cache/<stage>/<key>.json` naming each
output's sha256, and the outputs themselves as blobs `cache/<stage>/blobs/<sha256>`.
Both are written once (`put_if_absent`): blobs first, the manifest last, so the manifest
is the commit marker and a run killed half-way never leaves a hit on partial data. Since
blobs are addressed by their own content, two writers racing on one key can never
overwrite each other's bytes, even if a backend is not bit-for-bit deterministic: the
first manifest wins and points at blobs that exist. A blob that fails its digest check
(damaged storage) makes the entry a miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from adgen_dagster.stage_runner import cache_key, sha256_hex  # noqa: F401 - the key's one definition, re-exported
from resources.object_store import ObjectStore


@dataclass
class CacheEntry:
    key: str
    outputs: dict[str, bytes]
    metadata: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)


class ResultCache:
    def __init__(self, store: ObjectStore, prefix: str = "cache", enabled: bool = True):
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.enabled = enabled

    def _manifest(self, stage: str, key: str) -> str:
        return f"{self.prefix}/{stage}/{key}.json"

    def _blob(self, stage: str, digest: str) -> str:
        return f"{self.prefix}/{stage}/blobs/{digest}"

    def manifest(self, stage: str, key: str) -> CacheEntry | None:
        """The committed entry for `key` with its outputs' digests, without reading any blob."""
        if not self.enabled:
            return None
        raw = self.store.get_or_none(self._manifest(stage, key))
        if raw is None:
            return None
        try:
            manifest = json.loads(raw)
            digests = {str(n): str(d) for n, d in manifest["outputs"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return CacheEntry(key, {}, manifest.get("metadata", {}), digests)

    def blob(self, stage: str, digest: str) -> bytes | None:
        """A blob's bytes if present and intact."""
        data = self.store.get_or_none(self._blob(stage, digest))
        return data if data is not None and sha256_hex(data) == digest else None

    def get(self, stage: str, key: str) -> CacheEntry | None:
        """The complete, intact entry for `key`, or None (missing, partial or damaged)."""
        entry = self.manifest(stage, key)
        if entry is None:
            return None
        for name, digest in entry.digests.items():
            data = self.blob(stage, digest)
            if data is None:
                return None
            entry.outputs[name] = data
        return entry

    def put(self, stage: str, key: str, outputs: Mapping[str, bytes], metadata: Mapping[str, Any] | None = None) -> bool:
        """Write the entry once; False when another writer already committed this key."""
        if not self.enabled:
            return False
        digests = {name: sha256_hex(data) for name, data in outputs.items()}
        blobs = [(self._blob(stage, digests[name]), data) for name, data in outputs.items()]
        if len(blobs) > 1:  # written at once: their disk syncs (or S3 round trips) overlap
            from adgen_dagster.encoding import encoder_pool

            list(encoder_pool().map(lambda blob: self.store.put_if_absent(*blob), blobs))
        else:
            for blob in blobs:
                self.store.put_if_absent(*blob)
        manifest = {"stage": stage, "key": key, "outputs": digests, "metadata": dict(metadata or {})}
        return self.store.put_if_absent(
            self._manifest(stage, key), json.dumps(manifest, sort_keys=True, default=str).encode("utf-8")
        )
