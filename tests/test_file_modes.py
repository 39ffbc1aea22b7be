"""Files the store writes honour the umask, like any file a program writes (0644 under 022).

Checked on every write path: the local store's atomic `put` and write-once `put_if_absent`,
the result cache (blobs and manifests), a whole Dagster run (products/ and cache/) and
`adgen upload` in its own process with the umask a shell would give it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.cache import ResultCache
from resources.object_store import LocalObjectStore
from tests.conftest import SAMPLES
from tests.imagegen import encode, product_photo

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_put_and_put_if_absent_follow_the_umask(tmp_path):
    store = LocalObjectStore(tmp_path)
    with umask(0o022):
        store.put("a/b.png", b"x")
        assert store.put_if_absent("a/c.json", b"{}")
        ResultCache(store).put("stage", "k" * 64, {"out.png": b"png"}, {"m": 1})
    with umask(0o027):
        store.put("a/d.png", b"y")
    found = modes(tmp_path)
    assert found.pop("a/d.png") == 0o640
    assert len(found) == 4 and set(found.values()) == {0o644}, found  # incl. the cache blob and manifest
    assert not [p for p in tmp_path.rglob("*.part")]


def test_a_dagster_run_writes_products_and_cache_readable_by_others(store, store_root, store_resource, instance,
                                                                  add_product):
    with umask(0o022):
        pid = add_product("mode-mug.jpg", data=encode(product_photo(size=(160, 160)), "JPEG"))
        result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance,
                                partition_key=pid, run_config=QUIET)
    assert result.success
    found = modes(store_root)
    assert any(k.startswith("cache/") for k in found) and any(k.startswith(f"products/{pid}/ads/") for k in found)
    assert {k: m for k, m in found.items() if m != 0o644} == {}


def test_adgen_upload_writes_0644_under_umask_022(tmp_path):
    root = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ADGEN_")}
    env["ADGEN_STORE__ROOT"] = str(root)
    adgen = str(Path(sys.executable).with_name("adgen"))
    photo = SAMPLES / "B07GTFSCHB_844a1cce.jpg"
    proc = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" upload -q "$1" --details \'{"headline": "Hi"}\'',
                           adgen, str(photo)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert modes(root) == {f"uploads/{photo.name}": 0o644, f"uploads/{photo.name}.json": 0o644}
