"""The upload and catalog sensors, evaluated the Dagster way (build_sensor_context), on the
local store and on moto's S3-protocol server."""

import json
import os
import uuid

import dagster as dg
import pytest

from adgen_dagster.sensors import upload_checks
from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.product_ids import is_valid_product_id
from adgen_dagster.sensors import SENSORS, catalog_sensor, upload_sensor
from adgen_dagster.settings import get_settings
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from resources.store_resource import StoreResource
from tests.imagegen import encode, product_photo
from tests.s3server import S3TestServer
from tests import sensor_ticks
from tests.sensor_ticks import instance  # noqa: F401 (the in-memory instance fixture)

JPEG = encode(product_photo((32, 24)), "JPEG", quality=80)


@pytest.fixture(autouse=True)
def small_ticks(monkeypatch):
    """Small pages so a few dozen uploads take several ticks (and several S3 pages); one product
    per run, so each request is one product's (batching: tests/test_upload_batches.py)."""
    st = get_settings().sensor
    monkeypatch.setattr(st, "page_size", 10)
    monkeypatch.setattr(st, "pages_per_tick", 1)
    monkeypatch.setattr(st, "workers", 4)
    monkeypatch.setattr(get_settings(), "batch_size", 1)
    return st



@pytest.fixture(scope="module")
def server():
    srv = S3TestServer().start()
    yield srv
    srv.stop()


@pytest.fixture(params=["local", "s3"])
def resource(request, store_root):
    if request.param == "local":
        return StoreResource(root=str(store_root))
    srv = request.getfixturevalue("server")
    bucket = f"adgen-{uuid.uuid4().hex[:12]}"
    srv.client().create_bucket(Bucket=bucket)
    return StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=srv.resource())


def tick(sensor, instance, resource, cursor=None):
    result = sensor_ticks.tick(sensor, instance, resource, cursor)
    assert isinstance(result, dg.SensorResult)
    return result


def run_keys(result):
    return {r.partition_key: r.run_key for r in result.run_requests}


def put(store, key, data=JPEG):
    store.put(key, data)
    return store.info(key)


def test_definitions_load_with_sensors(store_resource):
    defs = dg.Definitions(assets=PIPELINE_ASSETS, jobs=[adgen_pipeline], sensors=SENSORS, resources=location_resources(store_resource))
    repo = defs.get_repository_def()
    repo.load_all_definitions()
    for s in SENSORS:
        sensor = repo.get_sensor_def(s.name)
        assert sensor.job_name == "adgen_pipeline"
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds >= 10


def test_first_tick_registers_and_requests(resource, instance):
    store = resource.get_store()
    a = put(store, "uploads/kettle.jpg")
    b = put(store, "uploads/mug.png", encode(product_photo((20, 20)), "PNG"))
    side = put(store, "uploads/mug.png.json", json.dumps({"headline": "Hot"}).encode())
    put(store, "uploads/notes.txt", b"not a photo")
    put(store, "uploads/empty.jpg", b"")
    corrupt = put(store, "uploads/corrupt.jpg", b"\xff\xd8\xff\xe0 truncated")

    result = tick(upload_sensor, instance, resource)
    assert run_keys(result) == {
        "kettle": f"kettle:{a.version}:-",
        "mug": f"mug:{b.version}:{side.version}",
        "corrupt": f"corrupt:{corrupt.version}:-",  # decoding fails later, in its own partition
    }
    assert set(instance.get_dynamic_partitions("products")) == {"kettle", "mug", "corrupt"}
    assert json.loads(store.get("products/mug/upload.json")) == {"upload": "uploads/mug.png", "version": b.version}
    assert store.info("products/notes/upload.json") is None and store.info("products/empty/upload.json") is None
    cursor = json.loads(result.cursor)
    assert {k: cursor[k] for k in ("start_after", "passes", "memory")} == {"start_after": None, "passes": 1, "memory": 1}
    assert len(cursor["told"]) == 2  # the two skips, reported once (not again on the next pass)
    assert all(r.tags["adgen/source"] == "upload" for r in result.run_requests)


def test_pagination_across_ticks_then_wraps(resource, instance):
    store = resource.get_store()
    for i in range(25):
        put(store, f"uploads/p{i:02d}.jpg")
    seen, cursors = {}, []
    cursor = None
    for _ in range(3):
        result = tick(upload_sensor, instance, resource, cursor)
        assert len(result.run_requests) == 10 or (len(result.run_requests) == 5 and len(cursors) == 2)
        assert not seen.keys() & run_keys(result).keys()
        seen.update(run_keys(result))
        cursor = result.cursor
        cursors.append(json.loads(cursor))
    assert len(seen) == 25
    assert cursors == [{"start_after": "uploads/p09.jpg", "passes": 0, "memory": 1},
                       {"start_after": "uploads/p19.jpg", "passes": 0, "memory": 2},
                       {"start_after": None, "passes": 1, "memory": 3}]
    again = tick(upload_sensor, instance, resource, cursor)  # wrapped to the start: nothing asked twice
    assert run_keys(again) == {} and again.dynamic_partitions_requests == []
    assert json.loads(again.cursor) == {"start_after": "uploads/p09.jpg", "passes": 1, "memory": 3}


def test_reupload_reruns_duplicate_does_not(resource, instance):
    store = resource.get_store()
    put(store, "uploads/lamp.jpg")
    first = tick(upload_sensor, instance, resource)
    record = store.info("products/lamp/upload.json")
    second = tick(upload_sensor, instance, resource, first.cursor)
    assert run_keys(second) == {}  # the same object is never asked for again
    assert store.info("products/lamp/upload.json").version == record.version  # not rewritten
    new = put(store, "uploads/lamp.jpg", encode(product_photo((40, 30), seed=1), "JPEG"))
    third = tick(upload_sensor, instance, resource, second.cursor)
    assert run_keys(third) == {"lamp": f"lamp:{new.version}:-"} != run_keys(first)
    assert json.loads(store.get("products/lamp/upload.json"))["version"] == new.version


def test_a_deleted_upload_is_forgotten_and_asked_for_again_when_it_returns(store, store_resource, instance, small_ticks,
                                                                             monkeypatch):
    monkeypatch.setattr(small_ticks, "pages_per_tick", 10)  # a whole pass per tick: what forgets deleted uploads
    put(store, "uploads/cup.jpg")
    put(store, "uploads/pen.jpg")
    path = store.root / "uploads" / "pen.jpg"
    st = os.stat(path)
    first = tick(upload_sensor, instance, store_resource)
    assert sorted(run_keys(first)) == ["cup", "pen"]
    second = tick(upload_sensor, instance, store_resource, first.cursor)
    assert run_keys(second) == {}
    path.unlink()
    third = tick(upload_sensor, instance, store_resource, second.cursor)
    assert run_keys(third) == {}
    path.write_bytes(JPEG)  # the same photo back, with the same file time: the same version as before
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    fourth = tick(upload_sensor, instance, store_resource, third.cursor)
    assert run_keys(fourth) == {"pen": run_keys(first)["pen"]}  # forgotten when it went, so asked for again
    assert run_keys(tick(upload_sensor, instance, store_resource, fourth.cursor)) == {}


def test_sidecar_change_and_sidecar_on_a_later_page(resource, instance, small_ticks, monkeypatch):
    store = resource.get_store()
    img = put(store, "uploads/bag.jpg")
    s1 = put(store, "uploads/bag.jpg.json", b'{"headline": "One"}')
    monkeypatch.setattr(small_ticks, "page_size", 1)  # the sidecar is on the next page
    first = tick(upload_sensor, instance, resource)
    assert run_keys(first) == {"bag": f"bag:{img.version}:{s1.version}"}
    s2 = put(store, "uploads/bag.jpg.json", b'{"headline": "Two, longer"}')
    cursor = tick(upload_sensor, instance, resource, first.cursor).cursor  # the sidecar page: nothing
    second = tick(upload_sensor, instance, resource, cursor)
    assert run_keys(second) == {"bag": f"bag:{img.version}:{s2.version}"}


def test_hostile_names_give_valid_partition_keys(resource, instance):
    store = resource.get_store()
    names = ["신발 사진.jpg", "red, shoe.jpg", "sub dir/Mug (2).JPG", "..hidden.png", "100%.webp"]
    for n in names:
        put(store, f"uploads/{n}")
    result = tick(upload_sensor, instance, resource)
    pids = [r.partition_key for r in result.run_requests]
    assert len(pids) == len(set(pids)) == len(names)
    assert all(is_valid_product_id(p) and "," not in p for p in pids)
    assert set(instance.get_dynamic_partitions("products")) == set(pids)


def test_same_product_id_newest_upload_wins(store, store_resource, instance):
    old = put(store, "uploads/shoe.jpg")
    os.utime(store.uri("uploads/shoe.jpg"), (1_600_000_000, 1_600_000_000))
    new = put(store, "uploads/shoe.png", encode(product_photo((20, 20)), "PNG"))
    assert old.key != new.key
    result = tick(upload_sensor, instance, store_resource)
    assert [(r.partition_key, r.tags["adgen/upload"]) for r in result.run_requests] == [("shoe", "uploads/shoe.png")]
    assert json.loads(store.get("products/shoe/upload.json"))["upload"] == "uploads/shoe.png"


def test_one_bad_object_never_stops_the_tick(store, store_resource, instance, monkeypatch):
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        put(store, f"uploads/{n}")
    real = upload_checks.register_upload

    def flaky(s, key):
        if key == "uploads/b.jpg":
            raise OSError("disk hiccup")
        return real(s, key)

    monkeypatch.setattr(upload_checks, "register_upload", flaky)
    result = tick(upload_sensor, instance, store_resource)
    assert sorted(run_keys(result)) == ["a", "c"]


def catalog_csv():
    return ("file,name,headline,subline,price,style,extra\n"
            "kettle.jpg,Kettle,Boil fast,1.7 L,\"$19,99\",warm wood,x\n"
            "missing.jpg,Ghost,,,,,\n"
            "notes.txt,Notes,,,,,\n"
            ",No file,,,,,\n"
            "mug.png,Mug,\"Hot, hotter\",,₩9000,,\n"
            "kettle.jpg,Kettle again,,,,,\n").encode()


def test_catalog_csv_registers_reports_and_requests(resource, instance):
    store = resource.get_store()
    kettle = put(store, "uploads/kettle.jpg")
    put(store, "uploads/mug.png", encode(product_photo((20, 20)), "PNG"))
    cat = put(store, "catalogs/spring.csv", catalog_csv())

    result = tick(catalog_sensor, instance, resource)
    assert run_keys(result) == {"kettle": f"catalog:catalogs/spring.csv:{cat.version}:kettle",
                                "mug": f"catalog:catalogs/spring.csv:{cat.version}:mug"}
    assert set(instance.get_dynamic_partitions("products")) == {"kettle", "mug"}
    assert json.loads(store.get("uploads/kettle.jpg.json")) == {
        "name": "Kettle", "headline": "Boil fast", "subline": "1.7 L", "price": "$19,99", "style": "warm wood"}
    report = json.loads(store.get("catalogs/spring.csv.report.json"))
    assert report["done"] and report["rows"] == 6 and report["catalog_version"] == cat.version
    assert [r["product_id"] for r in report["ok"]] == ["kettle", "mug"]
    failed = {r["row"]: r["error"] for r in report["failed"]}
    assert set(failed) == {2, 3, 4, 6}
    assert "not found" in failed[2] and "not an image" in failed[3] and "missing 'file'" in failed[4]
    assert "same product id 'kettle' as row 1" in failed[6]

    assert tick(catalog_sensor, instance, resource).run_requests == []  # once per catalog version
    uploads = tick(upload_sensor, instance, resource)  # the catalog already asked for these runs
    assert uploads.run_requests == []
    put(store, "uploads/kettle.jpg", encode(product_photo((40, 30), seed=2), "JPEG"))  # a new photo later
    assert [r.partition_key for r in tick(upload_sensor, instance, resource).run_requests] == ["kettle"]
    assert kettle.version != store.info("uploads/kettle.jpg").version


def test_catalog_jsonl_bad_rows_and_new_version(store, store_resource, instance):
    put(store, "uploads/a.jpg")
    put(store, "uploads/신발.jpg")
    lines = [
        json.dumps({"file": "a.jpg", "name": "A", "price": 12.5}),
        "{not json",
        json.dumps({"file": "신발.jpg", "headline": "새 신발", "price": {"amount": 3}}),
        json.dumps(["a list"]),
        "",
        json.dumps({"file": "신발.jpg", "headline": "새 신발", "price": "₩39,000"}),
    ]
    store.put("catalogs/shoes.jsonl", "\n".join(lines).encode())
    result = tick(catalog_sensor, instance, store_resource)
    pids = sorted(run_keys(result))
    assert len(pids) == 2 and "a" in pids and all(is_valid_product_id(p) for p in pids)
    report = json.loads(store.get("catalogs/shoes.jsonl.report.json"))
    failed = {r["row"]: r["error"] for r in report["failed"]}
    assert set(failed) == {2, 3, 4}
    assert "not valid JSON" in failed[2] and "price" in failed[3] and "JSON object" in failed[4]
    assert json.loads(store.get("uploads/a.jpg.json"))["price"] == "12.5"

    store.put("catalogs/shoes.jsonl", json.dumps({"file": "a.jpg", "name": "A v2"}).encode())  # a new version
    again = tick(catalog_sensor, instance, store_resource)
    assert list(run_keys(again)) == ["a"] and run_keys(again)["a"] != run_keys(result)["a"]


def test_catalog_without_file_column_is_reported(store, store_resource, instance):
    store.put("catalogs/bad.csv", b"name,headline\nKettle,Hot\n")
    result = tick(catalog_sensor, instance, store_resource)
    assert result.run_requests == []
    assert "no 'file' column" in json.loads(store.get("catalogs/bad.csv.report.json"))["error"]


def test_large_catalog_continues_over_ticks(resource, instance, small_ticks, monkeypatch):
    monkeypatch.setattr(small_ticks, "catalog_rows_per_tick", 4)
    store = resource.get_store()
    rows = ["file,name"]
    for i in range(10):
        put(store, f"uploads/item{i}.jpg")
        rows.append(f"item{i}.jpg,Item {i}")
    store.put("catalogs/big.csv", "\n".join(rows).encode())
    got = []
    for _ in range(3):
        got.append(sorted(run_keys(tick(catalog_sensor, instance, resource))))
    assert [len(g) for g in got] == [4, 4, 2]
    assert sorted(sum(got, [])) == sorted(f"item{i}" for i in range(10))
    assert tick(catalog_sensor, instance, resource).run_requests == []
