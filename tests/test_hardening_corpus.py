"""Issue 7: a corpus of bad and odd uploads, through the upload sensor and the real asset graph.

Every corpus item is one upload (file name + bytes + optional sidecar) with one asserted
outcome: correct outputs, a failure of its own partition with one message that names the
file and what is wrong, or (for what is not an image at all) a skip by the sensor with a
reason. The items that should succeed run together in ONE batched run (as a backfill runs
them), so none of them can break a neighbour; each item that should fail runs alone (as the
sensor launches it), so its run shows exactly one failure and its message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

import dagster as dg
import numpy as np
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from PIL import Image

from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.sensors import catalog_sensor, upload_sensor
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from adgen_dagster.encoding import decode_png
from resources.object_store import LocalObjectStore
from resources.products import register_upload
from resources.store_resource import StoreResource
from tests import imagegen as gen
from tests.imagegen import encode, product_photo
from tests.s3server import S3TestServer
from tests.storecheck import check_store

ASSETS = {"product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"}
SIZE = "320x320"
# Small canvases keep ~20 products in one run fast; nothing else differs from the defaults.
SMALL = {"ops": {"background": {"config": {"width": 256, "height": 256}},
                 "composite": {"config": {"width": 256, "height": 256}},
                 "ad_creatives": {"config": {"sizes": SIZE}}}}
DONE_BEFORE = {"composite": {"product_image", "nobg_image", "mask", "background"}, "segmentation": {"product_image", "background"}}
OUTPUTS = ("product_image.png", "details.json", "nobg_image.png", "mask.png", "background.png", "composite.png",
           "composite_mask.png", "retouched.png", "analysis.json", f"ads/{SIZE}.png", f"ads/{SIZE}.html")

HOSTILE = {
    "name": "\"Quoted\" & 'single' <img src=x onerror=\"document.title='pwned'\">",
    "headline": "<script>document.title='pwned'</script> Sale",
    "subline": "</figcaption></figure><iframe src=http://127.0.0.1:9/></iframe>",
    "price": "<b>₩39,000</b>",
}


def img(store, pid, name) -> Image.Image:
    return decode_png(store.get(f"products/{pid}/{name}"))


def rgb_at(store, pid, xy) -> tuple:
    return tuple(int(v) for v in np.asarray(img(store, pid, "product_image.png").convert("RGB"))[xy[1], xy[0]])


# --- per-item checks of the outputs that must be right, beyond "every output exists" ----------


def is_rgb_of_size(size):
    def check(store, pid):
        im = img(store, pid, "product_image.png")
        assert im.mode == "RGB" and im.size == size, (im.mode, im.size)
    return check


def cmyk_became_red(store, pid):
    is_rgb_of_size((160, 120))(store, pid)
    r, g, b = rgb_at(store, pid, (60, 80))  # on the red body, left of centre
    assert r > 120 and r > 2 * g and r > 2 * b, (r, g, b)


def deep_png_kept_its_range(store, pid):
    a = np.asarray(img(store, pid, "product_image.png"))
    assert a.shape == (120, 160, 3) and (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert a.min() < 90 and a.max() > 230  # scaled from 16 bits, not clipped to white


def palette_alpha_is_the_cutout(store, pid):
    im = img(store, pid, "product_image.png")
    a = np.asarray(im)[..., 3]
    assert im.mode == "RGBA" and a[0, 0] == 0 and a[60, 80] == 255
    mask = np.asarray(img(store, pid, "mask.png"))
    assert mask[0, 0] == 0 and mask[60, 80] == 255  # the segmenter trusted the transparency


def grey_stays_grey(store, pid):
    a = np.asarray(img(store, pid, "product_image.png")).astype(int)
    assert a.shape[2] == 3 and np.abs(a[..., 0] - a[..., 1]).max() <= 1 and np.abs(a[..., 1] - a[..., 2]).max() <= 1


def first_frame(store, pid):
    r, g, b = rgb_at(store, pid, (32, 32))
    assert r < 30 and 80 < g < 120 and b > 180, (r, g, b)  # frame 0 of tests.imagegen.animated is (0, 100, 200)


def exif_applied(store, pid):
    assert img(store, pid, "product_image.png").size == (120, 200)


def huge_downscaled(store, pid):
    assert img(store, pid, "product_image.png").size == (2048, 1536)


def full_frame_is_mostly_product(store, pid):
    mask = np.asarray(img(store, pid, "mask.png"))
    assert mask.mean() / 255 > 0.7 and mask[0, 0] == 0 and mask[80, 80] == 255  # only the corners are background


def hostile_text_is_escaped(store, pid):
    page = store.get(f"products/{pid}/ads/{SIZE}.html").decode("utf-8")
    lower = page.lower()
    for raw in ("<script", "<img src=x", "<iframe", "<b>", "onerror=\""):
        assert raw not in lower, raw
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; Sale" in page
    assert "&#34;Quoted&#34; &amp; &#39;single&#39;" in page and "&lt;b&gt;₩39,000&lt;/b&gt;" in page
    assert json.loads(store.get(f"products/{pid}/details.json"))["headline"] == HOSTILE["headline"]


@dataclass
class Item:
    name: str  # under uploads/
    data: bytes
    sidecar: Optional[bytes] = None
    expect: str = "ok"  # "ok" | "fail" | "skip"
    why: str = ""  # fail: what the message says after "<file>: " (or "<file>.json: "); skip: the sensor's reason
    check: Optional[Callable] = None  # ok: extra checks of the outputs
    stage: str = "product_image"  # fail: the step that fails


def corpus() -> list[Item]:
    photo = encode(product_photo((160, 120)), "JPEG", quality=90)
    jpeg, png = encode(product_photo((200, 150), seed=3), "JPEG"), encode(product_photo((200, 150), seed=4), "PNG")
    long_dirs = "긴 폴더 이름/" + "d" * 120 + "/" + "e" * 100 + "/"
    long300 = long_dirs + "f" * (300 - len(long_dirs) - 4) + ".jpg"
    assert len(long300) == 300
    return [
        # --- odd but valid photos: outputs, with what matters about each checked
        Item("신발 사진.jpg", photo, json.dumps(HOSTILE, ensure_ascii=False).encode(), check=hostile_text_is_escaped),
        Item("red, shoe.jpg", gen.exif_rotated_jpeg(product_photo((200, 120)), 6), check=exif_applied),
        Item("sub dir/Mug (2).JPG", gen.cmyk_jpeg(), check=cmyk_became_red),
        Item("..hidden.png", gen.deep_png(), check=deep_png_kept_its_range),
        Item("a..b.png", gen.palette_png_with_transparency(), check=palette_alpha_is_the_cutout),
        Item("grey.png", gen.grayscale_png(), check=grey_stays_grey),
        Item("spin.gif", gen.animated("GIF"), check=first_frame),
        Item("wave.webp", gen.animated("WEBP"), check=first_frame),
        Item("camera 8000x6000.jpg", gen.huge_photo(), check=huge_downscaled),
        Item("closeup.jpg", gen.full_frame_product(), check=full_frame_is_mostly_product),
        Item(long300, photo),
        Item("g" * 247 + ".jpg", photo),  # 251 bytes: its sidecar's name would be too long for the filesystem
        Item("shoe.jpg", photo),
        Item(" shoe.jpg", photo),  # differs only by a space: still its own product
        Item(unicodedata.normalize("NFD", "여름 셔츠.png"), png, check=is_rgb_of_size((200, 150))),  # as macOS writes it
        # --- bad photos: the product_image step fails, naming the file
        Item("empty.jpg", b"", expect="fail", why="the file is empty"),
        Item("notes.jpg", b"just some text, not a photo\n" * 20, expect="fail", why="not an image"),
        Item("cut-jpeg.jpg", gen.truncated(jpeg), expect="fail", why="the image data is truncated or damaged"),
        Item("cut-png.png", gen.truncated(png), expect="fail", why="the image data is truncated or damaged"),
        Item("bomb.png", gen.png_declaring(50000, 50000), expect="fail", why="refused as a possible decompression bomb (image size (2500000000 pixels) exceeds limit"),
        Item("dot.png", encode(Image.new("RGB", (1, 1)), "PNG"), expect="fail", why="the image is only 1x1 pixels"),
        Item("phone-heic.jpg", gen.heic_like(), expect="fail", why="not an image"),
        Item("poster.jpg", gen.eps_document(), expect="fail", why="not an image"),  # never reaches Ghostscript
        # a valid image with nothing in it: decodes, but the cut-out is empty, and composite says so
        Item("blank white.png", gen.blank(), expect="fail", stage="segmentation",
             why="blank white.png: no trustworthy cut-out: no product found to cut out"),
        # --- good photos, bad sidecars: the sidecar is named
        Item("mug-malformed.jpg", photo, b'{"headline": "Mug", "price": ', "fail", "not valid UTF-8 JSON"),
        Item("mug-types.jpg", photo, json.dumps({"headline": ["a"], "seed": "x", "palette": 5}).encode(), "fail",
             "headline: Input should be a valid string; palette: Value error, expected a list of #rrggbb colours"),
        Item("mug-nested.jpg", photo, b"[" * 100_000, "fail", "not usable JSON (nested too deeply)"),
        Item("mug-latin1.jpg", photo, '{"name": "café"}'.encode("latin-1"), "fail", "not valid UTF-8 JSON"),
        Item("mug-long.jpg", photo, json.dumps({"headline": "x" * 500}).encode(), "fail", "headline: String should have at most 200 characters"),
        # --- not photos at all: the sensor skips them with a reason
        Item("phone.heic", gen.heic_like(), expect="skip", why="not an image (unsupported file extension)"),
        Item("readme.txt", b"hello", expect="skip", why="not an image (unsupported file extension)"),
    ]


def put_upload(store: LocalObjectStore, item: Item) -> None:
    """As a user drops files into the folder (no store write: some names are too long for its temp files)."""
    path = store.root.joinpath("uploads", *item.name.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(item.data)
    if item.sidecar is not None:
        path.with_name(path.name + ".json").write_bytes(item.sidecar)


@pytest.fixture(autouse=True)
def one_product_per_run(monkeypatch):
    """Each upload's request on its own, so requests can be checked per product (batching: test_upload_batches.py)."""
    from adgen_dagster.settings import get_settings

    monkeypatch.setattr(get_settings(), "batch_size", 1)


def tick(sensor, instance, resource, cursor=None):
    """One sensor evaluation; returns the result and what it logged."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=location_resources(resource)) as ctx:
        ctx.log.addHandler(Collect())
        result = sensor(ctx)
    return result, lines


def upload_hashes(store) -> dict[str, str]:
    return {o.key: hashlib.sha256(store.get(o.key)).hexdigest() for o in store.list("uploads/")}


def materialize(instance, resource, **kw):
    return dg.materialize(PIPELINE_ASSETS, resources=location_resources(resource), instance=instance, run_config=SMALL,
                          raise_on_error=False, **kw)


def failures(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def materialized(result) -> set[tuple[str, str]]:
    return {(e.asset_key.to_user_string(), e.partition) for e in result.get_asset_materialization_events()}


def test_corpus_through_the_upload_sensor_and_the_asset_graph(store, store_resource, instance):
    items = corpus()
    for it in items:
        put_upload(store, it)
    before = upload_hashes(store)
    by_pid = {product_id_for(it.name): it for it in items if it.expect != "skip"}
    assert len(by_pid) == len(items) - 2, "two corpus names gave the same product id"
    assert all(is_valid_product_id(p) and len(p) <= 64 for p in by_pid)
    assert product_id_for(unicodedata.normalize("NFD", "여름 셔츠.png")).startswith("yeoreum-syeocheu-")  # readable from macOS too

    # The sensor: one run request per image upload (a corrupt one included: decoding fails
    # later, in its own partition), empty and non-image files skipped with their reason.
    result, log = tick(upload_sensor, instance, store_resource)
    requested = {r.partition_key for r in result.run_requests}
    empty = product_id_for("empty.jpg")
    assert requested == set(by_pid) - {empty}
    assert not [line for line in log if "Error" in line or ("errors" in line and ", 0 errors" not in line)], log
    for it in items:
        if it.expect == "skip" or it.name == "empty.jpg":
            reason = "empty file" if it.name == "empty.jpg" else it.why
            assert f"upload {'uploads/' + it.name!r} skipped: {reason}" in log, (it.name, log)
    # The store refuses to address anything outside itself, whatever the name says.
    with pytest.raises(ValueError, match="invalid object key"):
        register_upload(store, "uploads/../escape.jpg")
    register_upload(store, "uploads/empty.jpg")  # registered by hand: its run must fail clearly

    good = [p for p, it in by_pid.items() if it.expect == "ok"]
    bad = [p for p, it in by_pid.items() if it.expect == "fail"]
    instance.add_dynamic_partitions("products", good + bad)  # the good ones are neighbours: one range

    # All good products in ONE batched run, as a backfill runs them.
    run = materialize(instance, store_resource, tags={ASSET_PARTITION_RANGE_START_TAG: good[0],
                                                      ASSET_PARTITION_RANGE_END_TAG: good[-1]})
    assert run.success, failures(run)
    assert materialized(run) == {(a, p) for a in ASSETS for p in good}
    for pid in good:
        for name in OUTPUTS:
            assert store.exists(f"products/{pid}/{name}"), (by_pid[pid].name, name)
        assert img(store, pid, f"ads/{SIZE}.png").size == (320, 320)
        if by_pid[pid].check:
            by_pid[pid].check(store, pid)

    # Each bad product alone, as the sensor launches it: one failure, one line, naming the file
    # (the steps after product_image know the product, not the file).
    for pid in bad:
        it = by_pid[pid]
        run = materialize(instance, store_resource, partition_key=pid)
        [message] = failures(run)
        if it.stage == "product_image":
            shown = it.name + (".json" if it.sidecar is not None else "")
            assert f"product_image failed for product {pid!r}: {shown}: {it.why}" in message, (it.name, message)
            assert not materialized(run)
            assert [o.key for o in store.list(f"products/{pid}/")] == [f"products/{pid}/upload.json"]
        else:
            assert f"{it.stage} failed for product {pid!r}: {it.why}" in message, (it.name, message)
            assert {a for a, _ in materialized(run)} == DONE_BEFORE[it.stage]
            assert not store.exists(f"products/{pid}/{it.stage}.png")
        assert not run.success and "\n" not in message.strip() and "Traceback" not in message

    # A good product whose sidecar is then broken: its run fails and its outputs stay as they were.
    grey = product_id_for("grey.png")
    outputs = {o.key: store.get(o.key) for o in store.list(f"products/{grey}/")}
    store.put("uploads/grey.png.json", b'{"headline": ')
    run = materialize(instance, store_resource, partition_key=grey)
    assert not run.success and "grey.png.json: not valid UTF-8 JSON" in failures(run)[0]
    assert {o.key: store.get(o.key) for o in store.list(f"products/{grey}/")} == outputs

    # The sensor keeps ticking: the changed sidecar asks for a new run of that product only.
    again, log = tick(upload_sensor, instance, store_resource, result.cursor)
    assert [r.partition_key for r in again.run_requests] == [grey]
    old_key = next(r.run_key for r in result.run_requests if r.partition_key == grey)
    assert next(r.run_key for r in again.run_requests if r.partition_key == grey) != old_key

    # The only failed runs are the bad products' own, one partition each (and grey's re-run).
    failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert sorted(r.tags["dagster/partition"] for r in failed) == sorted(bad + [grey])

    # The uploads were never touched; everything stored is whole and agrees with the cache.
    after = upload_hashes(store)
    assert after.pop("uploads/grey.png.json") and after == before  # (that sidecar is the one this test wrote)
    check_store(store)


def test_broken_catalog_rows_are_reported_one_by_one(store, store_resource, instance):
    """A catalog with rows that are hostile or broken in every way: each bad row is reported
    with its number, the good rows still register (hostile text only ever as data)."""
    store.put("uploads/kettle.jpg", encode(product_photo((64, 48)), "JPEG"))
    store.put("uploads/mug.png", encode(product_photo((64, 48), seed=1), "PNG"))
    rows = [
        {"file": "kettle.jpg", "name": HOSTILE["name"], "headline": HOSTILE["headline"]},  # 1 ok: text is data
        {"file": "../../etc/passwd.jpg"},  # 2
        {"file": "/abs/photo.jpg"},  # 3
        {"file": "mug.png", "palette": 5},  # 4
        {"file": "mug.png", "headline": "x" * 500},  # 5
        {"file": "mug.png", "seed": "soon"},  # 6
        {"file": "missing.jpg"},  # 7
        {"file": "mug.png", "price": {"amount": 3}},  # 8
        {"file": "mug.png", "name": "Mug"},  # 9 ok
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["[" * 100_000, "{broken"]  # 10, 11
    store.put("catalogs/spring.jsonl", "\n".join(lines).encode())
    # A CSV whose field is over the csv module's limit cannot be read past that row: the
    # whole file is reported once (not retried and logged again on every tick).
    store.put("catalogs/huge.csv", b'file,name\nkettle.jpg,"' + b"x" * 200_000 + b'"\n')

    result, log = tick(catalog_sensor, instance, store_resource)
    assert sorted(r.partition_key for r in result.run_requests) == sorted([product_id_for("kettle.jpg"), product_id_for("mug.png")])
    report = json.loads(store.get("catalogs/spring.jsonl.report.json"))
    failed = {r["row"]: r["error"] for r in report["failed"]}
    assert set(failed) == {2, 3, 4, 5, 6, 7, 8, 10, 11}
    for row in (2, 3):
        assert "is not a plain path under uploads/" in failed[row]
    assert "palette" in failed[4] and "at most 200 characters" in failed[5] and "seed" in failed[6]
    assert "not found" in failed[7] and "price" in failed[8]
    assert "nested too deeply" in failed[10] and "not valid JSON" in failed[11]
    assert json.loads(store.get("uploads/kettle.jpg.json"))["headline"] == HOSTILE["headline"]
    huge = json.loads(store.get("catalogs/huge.csv.report.json"))
    assert huge["done"] and "field larger than field limit" in huge["error"]
    again, log = tick(catalog_sensor, instance, store_resource)
    assert again.run_requests == [] and not any("huge.csv" in line for line in log)


def test_s3_keys_no_filesystem_could_hold_are_refused_without_stopping_the_tick(instance):
    """On S3 a key may literally contain `..`, `//` or control characters. The sensor skips
    each such upload with its reason and goes on; the store never resolves them to anything."""
    server = S3TestServer().start()
    try:
        client, bucket = server.client(), f"adgen-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        jpeg = encode(product_photo((48, 48)), "JPEG")
        hostile = ["uploads/../escape.jpg", "uploads/a//b.jpg", "uploads/./dot.jpg", "uploads/tab\there.jpg"]
        for key in hostile + ["uploads/fine.jpg"]:
            client.put_object(Bucket=bucket, Key="shop/" + key, Body=jpeg)
        resource = StoreResource(kind="s3", bucket=bucket, prefix="shop/", s3=server.resource())
        result, log = tick(upload_sensor, instance, resource)
        assert [r.partition_key for r in result.run_requests] == ["fine"]
        for key in hostile:
            assert any(line.startswith(f"upload {key!r} skipped: invalid object key: ") for line in log), (key, log)
        written = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
        assert written == {"shop/" + k for k in hostile} | {"shop/uploads/fine.jpg", "shop/products/fine/upload.json"}
    finally:
        server.stop()
