"""Walk a store (local or S3) and check that nothing in it is half-written or inconsistent.

Used after fault and concurrency tests: whatever was killed, cut off or raced, what the
store lists must be whole and agree with the result cache.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

from PIL import Image

from resources.cache import sha256_hex
from resources.object_store import ObjectStore

# Written by the pipeline but not stage outputs (so not in any cache manifest).
NOT_CACHED = {"upload.json"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class StoreReport:
    keys: list[str] = field(default_factory=list)
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)  # manifest key -> {output name: digest}
    products: dict[str, dict[str, str]] = field(default_factory=dict)  # pid -> {output name: sha256}

    def manifests_of(self, stage: str) -> dict[str, dict[str, str]]:
        return {k: v for k, v in self.manifests.items() if k.startswith(f"cache/{stage}/")}


def check_store(store: ObjectStore) -> StoreReport:
    """Assert, for every object the store lists:

    - no temporary or partial file is listed;
    - every PNG the pipeline wrote (products/, cache blobs) decodes completely, and every
      JSON under products/ and cache/ parses;
    - every cache blob hashes to its own name;
    - every cache manifest names its own key and only blobs that exist (and so hash right);
    - every product output (products/<pid>/<name>, except upload.json) has the digest of
      that output in one of the cache manifests: nothing outside the cache's knowledge.

    Returns what it saw, for further assertions.
    """
    report = StoreReport()
    blobs: set[str] = set()
    for obj in store.list(""):
        key = obj.key
        report.keys.append(key)
        base = key.rsplit("/", 1)[-1]
        assert not base.endswith(".part"), f"temporary file listed as an object: {key}"
        data = store.get(key)
        assert len(data) == obj.size, f"{key}: listed size {obj.size}, read {len(data)} bytes"
        if key.startswith("products/") and key.endswith(".png"):
            assert data.startswith(PNG_MAGIC), f"{key} is not a PNG"
        if key.startswith(("products/", "cache/")) and data.startswith(PNG_MAGIC):
            with Image.open(io.BytesIO(data)) as im:  # (uploads are the user's bytes, whole or not)
                im.load()
        elif key.endswith(".json") and key.startswith(("products/", "cache/")):
            doc = json.loads(data)
            if key.startswith("cache/"):
                stage = key.split("/")[1]
                assert doc["key"] == base[: -len(".json")] and doc["stage"] == stage, f"{key}: manifest names {doc.get('stage')}/{doc.get('key')}"
                report.manifests[key] = {str(n): str(d) for n, d in doc["outputs"].items()}
        if key.startswith("cache/") and "/blobs/" in key:
            assert sha256_hex(data) == base, f"blob {key} does not hash to its name"
            blobs.add(key)
        if key.startswith("products/") and base not in NOT_CACHED:
            pid, name = key[len("products/"):].split("/", 1)
            report.products.setdefault(pid, {})[name] = sha256_hex(data)
    for mkey, outputs in report.manifests.items():
        stage = mkey.split("/")[1]
        for name, digest in outputs.items():
            assert f"cache/{stage}/blobs/{digest}" in blobs, f"{mkey}: blob of {name} ({digest[:12]}) is missing"
    known = {(name, digest) for outputs in report.manifests.values() for name, digest in outputs.items()}
    for pid, files in report.products.items():
        for name, digest in files.items():
            assert (name, digest) in known, f"products/{pid}/{name} ({digest[:12]}) matches no cache manifest"
    return report
