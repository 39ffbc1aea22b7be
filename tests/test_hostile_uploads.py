"""Issue 14: what a hostile or careless upload folder can still do, through the sensors and the assets.

One local store holds, beside good photos: names no key may hold (control characters,
backslash, bytes that are not UTF-8), odd but valid names (hidden, reserved on Windows,
255 bytes, spaces), links of every kind (loop, dangling, to a folder, out of the store,
to /dev/zero, inside the store), FIFOs and a socket named like photos and sidecars,
folders named like photos and sidecars, and a 30 GB sparse "photo". Every test here
runs under a time limit: a FIFO that blocked a reader would fail it, not hang the suite.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import dagster as dg
import pytest

from adgen_dagster.product_ids import product_id_for
from adgen_dagster.sensors import catalog_sensor, upload_sensor
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.object_store import NotAnObject
from resources.products import register_upload
from tests.hostile import NOT_UTF8, ODD_BUT_FINE, REFUSED_NAMES, fifo, link, sparse, tree_state, unix_socket
from tests.imagegen import encode, product_photo

SMALL = {"ops": {"background": {"config": {"width": 192, "height": 192}},
                 "composite": {"config": {"width": 192, "height": 192}},
                 "ad_creatives": {"config": {"sizes": "256x256"}}}}
SECRET = "OUTSIDE-SECRET-7f3a"


def jpeg(seed=0) -> bytes:
    return encode(product_photo((96, 72), seed=seed), "JPEG", quality=90)


@pytest.fixture(autouse=True)
def one_product_per_run(monkeypatch):
    """Each upload's request on its own, so requests can be checked per product (batching: test_upload_batches.py)."""
    from adgen_dagster.settings import get_settings

    monkeypatch.setattr(get_settings(), "batch_size", 1)


def tick(sensor, instance, resource, cursor=None):
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=location_resources(resource)) as ctx:
        ctx.log.addHandler(Collect())
        result = sensor(ctx)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result, lines


def failures(result) -> list[str]:
    return [e.step_failure_data.error.message.strip() for e in result.all_events if e.is_step_failure]


@pytest.fixture
def outside(tmp_path) -> Path:
    """Files outside the store that links point at: nothing may read or write them through the store."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.jpg").write_bytes(jpeg(seed=9))
    (out / "secret.json").write_text(json.dumps({"headline": SECRET, "name": SECRET}))
    (out / "catalog.csv").write_text(f"file,name\ngood.jpg,{SECRET}\n")
    (out / "x.jpg").write_bytes(jpeg(seed=8))
    return out


@pytest.fixture
def hostile(store, outside):
    """The upload folder: (product ids that must run and succeed, that must run and fail, skipped names -> reason)."""
    up = store.root / "uploads"
    up.mkdir(parents=True)
    ok = {}
    for name in ["good.jpg", *ODD_BUT_FINE]:
        (up / name).write_bytes(jpeg())
        ok[product_id_for(name)] = name
    (up / "folder.jpg").mkdir()  # a folder named like a photo: its contents are uploads of their own
    (up / "folder.jpg" / "inner.png").write_bytes(encode(product_photo((96, 72), seed=2), "PNG"))
    ok[product_id_for("folder.jpg/inner.png")] = "folder.jpg/inner.png"
    (up / "withdir.jpg").write_bytes(jpeg())  # its "sidecar" is a folder: no details, as on S3
    (up / "withdir.jpg.json").mkdir()
    ok[product_id_for("withdir.jpg")] = "withdir.jpg"

    skipped = {}
    for name, why in REFUSED_NAMES.items():
        (up / name).write_bytes(jpeg())
        skipped[name] = why
    with open(os.path.join(os.fsencode(up), NOT_UTF8), "wb") as fh:
        fh.write(jpeg())
    skipped["caf\\xe9 cr\\xe8me.jpg"] = "not valid UTF-8"
    link(up / "loop1.jpg", "loop2.jpg")
    link(up / "loop2.jpg", "loop1.jpg")
    link(up / "dangling.jpg", "nowhere.jpg")
    link(up / "outside.jpg", outside / "secret.jpg")
    link(up / "inside.jpg", "good.jpg")  # even inside the store: no links at all
    link(up / "dirlink.jpg", outside)
    link(up / "evil", outside)  # a folder link: nothing below it is listed or reachable
    for name in ("loop1.jpg", "loop2.jpg", "dangling.jpg", "outside.jpg", "inside.jpg", "dirlink.jpg", "evil"):
        skipped[name] = "symbolic link"
    fifo(up / "fifo.jpg")
    skipped["fifo.jpg"] = "FIFO"

    fail = {}  # photos whose own run fails, with the message's words
    (up / "withfifo.jpg").write_bytes(jpeg())
    fifo(up / "withfifo.jpg.json")
    skipped["withfifo.jpg.json"] = "FIFO"
    fail[product_id_for("withfifo.jpg")] = "uploads/withfifo.jpg.json is a FIFO (named pipe), not a regular file; it is never opened"
    (up / "withzero.jpg").write_bytes(jpeg())
    link(up / "withzero.jpg.json", "/dev/zero")
    skipped["withzero.jpg.json"] = "symbolic link"
    fail[product_id_for("withzero.jpg")] = "uploads/withzero.jpg.json is a symbolic link (links are not followed); it is never opened"
    (up / "sidecar-out.jpg").write_bytes(jpeg())
    link(up / "sidecar-out.jpg.json", outside / "secret.json")
    skipped["sidecar-out.jpg.json"] = "symbolic link"
    fail[product_id_for("sidecar-out.jpg")] = "uploads/sidecar-out.jpg.json is a symbolic link (links are not followed)"
    sparse(up / "sparse.jpg", 30 * 2**30)
    fail[product_id_for("sparse.jpg")] = "sparse.jpg: the file is 32212 MB, larger than the 210 MB limit"
    with unix_socket(up / "sock.jpg"):
        skipped["sock.jpg"] = "socket"
        yield ok, fail, skipped


@pytest.mark.timeout(240)
def test_every_object_is_judged_alone_and_nothing_outside_the_store_is_touched(store, store_resource, instance,
                                                                                outside, hostile):
    ok, fail, skipped = hostile
    before_outside = tree_state(outside)

    result, log = tick(upload_sensor, instance, store_resource)
    assert {r.partition_key for r in result.run_requests} == set(ok) | set(fail)
    assert not [ln for ln in log if "rror" in ln and ", 0 errors" not in ln], log
    for name, why in skipped.items():
        lines = [ln for ln in log if ln.startswith(f"upload {'uploads/' + name!r} skipped: ")]
        assert len(lines) == 1 and why in lines[0], (name, lines, log)
    assert not any(ln.startswith("upload 'uploads/evil/") for ln in log)  # nothing listed through a folder link
    # The next pass asks for nothing again and says nothing again.
    again, log2 = tick(upload_sensor, instance, store_resource, result.cursor)
    assert again.run_requests == []
    assert not [ln for ln in log2 if "skipped" in ln], log2
    with pytest.raises(NotAnObject, match="symbolic link"):
        register_upload(store, "uploads/outside.jpg")

    # The good ones in one batched run (as neighbours in the partition list): outputs for each.
    good = sorted(ok)
    for pid in instance.get_dynamic_partitions("products"):
        instance.delete_dynamic_partition("products", pid)
    instance.add_dynamic_partitions("products", good + sorted(fail))
    run = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance, run_config=SMALL,
                         raise_on_error=False, tags={"dagster/asset_partition_range_start": good[0],
                                                     "dagster/asset_partition_range_end": good[-1]})
    assert run.success, failures(run)
    for pid in good:
        assert store.exists(f"products/{pid}/ads/256x256.png"), ok[pid]
    assert json.loads(store.get(f"products/{product_id_for('withdir.jpg')}/details.json"))["headline"] == ""

    # The bad ones alone: one line naming the file, at once (no FIFO blocks, no 30 GB read).
    for pid, words in fail.items():
        run = dg.materialize(PIPELINE_ASSETS[:1], partition_key=pid, resources=location_resources(store_resource),
                             instance=instance, raise_on_error=False)
        [message] = failures(run)
        assert words in message and "\n" not in message, (pid, message)

    # A record whose upload was later swapped for a link out of the store: refused, not followed.
    os.replace(store.root / "uploads" / "outside.jpg", store.root / "uploads" / "good.jpg")
    run = dg.materialize(PIPELINE_ASSETS[:1], partition_key="good", resources=location_resources(store_resource),
                         instance=instance, raise_on_error=False)
    assert "uploads/good.jpg is a symbolic link" in failures(run)[0]

    # Nothing outside the store was written, and nothing of it reached the outputs.
    assert tree_state(outside) == before_outside
    for o in store.list("products/"):
        assert SECRET.encode() not in store.get(o.key), o.key


@pytest.mark.timeout(120)
def test_catalogs_odd_names_links_fifos_and_rows_through_a_linked_folder(store, store_resource, instance, outside,
                                                                         monkeypatch):
    from adgen_dagster.settings import get_settings

    monkeypatch.setattr(get_settings().sensor, "catalog_max_bytes", 1 << 20)
    up, cats = store.root / "uploads", store.root / "catalogs"
    up.mkdir(parents=True)
    cats.mkdir()
    (up / "good.jpg").write_bytes(jpeg())
    fifo(up / "pipe.jpg")
    link(up / "evil", outside)  # a row through it would write outside.x.jpg.json if links were followed
    link(up / "out.jpg", outside / "secret.jpg")
    rows = ["file,name", "good.jpg,Good", "evil/x.jpg,Evil", "pipe.jpg,Pipe", "out.jpg,Out"]
    (cats / "spring.csv").write_text("\n".join(rows) + "\n")
    (cats / "bad\nname.csv").write_text("file\ngood.jpg\n")
    link(cats / "linked.csv", outside / "catalog.csv")
    fifo(cats / "fifo.csv")
    sparse(cats / "huge.csv", 2 << 30)
    before_outside = tree_state(outside)

    result, log = tick(catalog_sensor, instance, store_resource)
    assert [r.partition_key for r in result.run_requests] == ["good"]
    report = json.loads(store.get("catalogs/spring.csv.report.json"))
    failed = {r["row"]: r["error"] for r in report["failed"]}
    assert "uploads/evil/x.jpg" in failed[2] and "'uploads/evil' is a symbolic link" in failed[2]
    assert "uploads/pipe.jpg is a FIFO" in failed[3] and "uploads/out.jpg is a symbolic link" in failed[4]
    for name, why in {"bad\nname.csv": "control character", "linked.csv": "symbolic link", "fifo.csv": "FIFO"}.items():
        assert sum(ln.startswith(f"catalog {'catalogs/' + name!r} skipped: ") and why in ln for ln in log) == 1, (name, log)
    huge = json.loads(store.get("catalogs/huge.csv.report.json"))
    assert huge["done"] and "catalogs/huge.csv is 2147 MB, larger than the 1.0 MB limit" in huge["error"]
    assert tree_state(outside) == before_outside

    again, log2 = tick(catalog_sensor, instance, store_resource, result.cursor)
    assert again.run_requests == [] and not [ln for ln in log2 if "skipped" in ln or "huge" in ln], log2


@pytest.mark.timeout(120)
def test_on_s3_odd_keys_markers_and_oversized_objects_are_judged_alone(server, instance):
    import uuid

    from resources.object_store import TooLarge
    from resources.store_resource import StoreResource

    client, bucket = server.client(), f"adgen-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    objects = {"uploads/good.jpg": jpeg(), "uploads/a%2Fb.jpg": jpeg(1), "uploads/sub/": b"",
               "uploads/esc\x1b.jpg": jpeg(2), "uploads/big.jpg": os.urandom(2_500_000), "uploads/empty.jpg": b""}
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key="shop/" + key, Body=body)
    resource = StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=server.resource())
    result, log = tick(upload_sensor, instance, resource)
    assert sorted(r.partition_key for r in result.run_requests) == sorted(
        [product_id_for(n) for n in ("good.jpg", "a%2Fb.jpg", "big.jpg")])
    assert sum("esc\\x1b.jpg" in ln and "skipped: invalid object key: the name holds the control character" in ln
               for ln in log) == 1
    assert sum(ln == "upload 'uploads/sub/' skipped: a folder marker, not an object" for ln in log) == 1
    assert any(ln == "upload 'uploads/empty.jpg' skipped: empty file" for ln in log)

    store = resource.get_store()
    with pytest.raises(TooLarge, match="uploads/big.jpg is 2.5 MB, larger than the 1.0 MB limit"):
        store.get("uploads/big.jpg", 1_000_000)
    run = dg.materialize(PIPELINE_ASSETS[:1], partition_key="big", resources=location_resources(resource), instance=instance,
                         run_config={"ops": {"product_image": {"config": {"max_bytes": 1_000_000}}}}, raise_on_error=False)
    [message] = failures(run)
    assert "product_image failed for product 'big': big.jpg: the file is 2 MB, larger than the 1 MB limit" in message
