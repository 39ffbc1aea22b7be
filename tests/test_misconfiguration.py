"""Issue 14: misconfiguration is an error everywhere, never a silent empty store; and the
re-upload rule the README states (another format replaces the photo, whatever its file time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pydantic import ValidationError

from adgen_dagster.sensors import catalog_sensor, upload_sensor
from adgen_dagster.settings import AdgenSettings
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.object_store import LocalObjectStore, StoreError
from resources.store_resource import StoreResource
from tests.conftest import REPO
from tests.imagegen import encode, product_photo
from tests.test_cli import adgen
from tests.sensor_ticks import tick

pytestmark = pytest.mark.timeout(180)


def test_a_store_root_that_is_a_file_is_an_error_everywhere(tmp_path, instance):
    root = tmp_path / "not-a-folder"
    root.write_text("oops")
    resource = StoreResource(root=str(root))
    for sensor in (upload_sensor, catalog_sensor):
        with pytest.raises(StoreError, match=f"the local store root {root} is a file, not a folder; set ADGEN_STORE__ROOT"):
            tick(sensor, instance, resource)
    instance.add_dynamic_partitions("products", ["lamp"])
    result = dg.materialize(PIPELINE_ASSETS, partition_key="lamp", resources=location_resources(resource), instance=instance,
                            raise_on_error=False)
    [message] = [e.step_failure_data.error.message.strip() for e in result.all_events if e.is_step_failure]
    assert "product_image cannot start: the local store root" in message and "ADGEN_STORE__ROOT" in message
    assert "\n" not in message

    (tmp_path / "p.jpg").write_bytes(encode(product_photo((64, 48)), "JPEG"))
    r = adgen("upload", "p.jpg", cwd=tmp_path, env={"ADGEN_STORE__ROOT": str(root)})
    assert r.returncode == 1 and "ADGEN_STORE__ROOT" in r.err and "Traceback" not in r.err

    # A root that becomes a file after the store was opened: the next listing says so too.
    later = tmp_path / "later"
    store = LocalObjectStore(later)
    later.write_text("replaced")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        store.list_page("uploads/")


def test_an_empty_store_root_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ADGEN_STORE__ROOT", "")
    with pytest.raises(ValidationError, match="must name a folder"):
        AdgenSettings()
    with pytest.raises(StoreError, match="the local store root is empty; set ADGEN_STORE__ROOT"):
        StoreResource(root="  ").get_store()
    (tmp_path / "x.jpg").write_bytes(encode(product_photo((64, 48)), "JPEG"))
    r = adgen("upload", "x.jpg", cwd=tmp_path, env={"ADGEN_STORE__ROOT": ""})
    assert r.returncode == 1 and "ADGEN_STORE__ROOT: Value error, must name a folder" in r.err, r.err
    # The code location refuses to load, naming the setting (what the UI and the daemon show). It reads
    # its settings when Dagster loads it (`@dg.definitions`), not at import: load it as Dagster does.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ADGEN_")}, "ADGEN_STORE__ROOT": ""}
    dagster_cli = str(Path(sys.executable).with_name("dagster"))
    proc = subprocess.run([dagster_cli, "definitions", "validate", "-m", "adgen_dagster.definitions"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "store.root" in out and "must name a folder" in out, out[-2000:]


def test_a_missing_store_says_where_it_looked(tmp_path, instance):
    resource = StoreResource(root=str(tmp_path / "typo"))
    result = tick(upload_sensor, instance, resource)
    assert result.skip_reason.skip_message == f"no uploads to process among 0 objects in {tmp_path / 'typo' / 'uploads'}"


def test_a_reupload_in_another_format_replaces_the_photo_whatever_its_file_time(store, store_resource, instance):
    old = encode(product_photo((64, 48)), "JPEG")
    store.put("uploads/lamp.jpg", old)
    first = tick(upload_sensor, instance, store_resource)
    assert [r.tags["adgen/upload"] for r in first.run_requests] == ["uploads/lamp.jpg"]
    # lamp.png arrives later, but keeps an old file time (cp -p, rsync -a, unzip)
    path = store.root / "uploads" / "lamp.png"
    path.write_bytes(encode(product_photo((64, 48), seed=5), "PNG"))
    os.utime(path, (1_500_000_000, 1_500_000_000))
    second = tick(upload_sensor, instance, store_resource, first.cursor)
    assert [(r.partition_key, r.tags["adgen/upload"]) for r in second.run_requests] == [("lamp", "uploads/lamp.png")]
    assert json.loads(store.get("products/lamp/upload.json"))["upload"] == "uploads/lamp.png"
    # and it stays the product's photo on the next passes (lamp.jpg is the older arrival), asked for once
    third = tick(upload_sensor, instance, store_resource, second.cursor)
    assert third.run_requests == []
    assert json.loads(store.get("products/lamp/upload.json"))["upload"] == "uploads/lamp.png"
