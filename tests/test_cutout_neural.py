"""The shipped neural cut-out (U²-Net-p on OpenCV's DNN), the `auto` default and the quality gate."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from adgen_dagster.backends import get_segmenter
from adgen_dagster.imaging.segment import Cutout, SegmentParams
from adgen_dagster.imaging.segment_gate import CutoutRejected, check_cutout, frame_sides, gate_reason
from adgen_dagster.models import u2netp
from adgen_dagster.models.auto_segment import cutout_auto
from adgen_dagster.settings import AdgenSettings
from bench.devset import make_devset
from bench.devset.generate import SOURCES
from adgen_dagster.definitions import location_resources
from tests.conftest import SAMPLES
from tests.synthetic import iou, mae


DEVSET_BG = SOURCES / "bg"


@pytest.fixture(scope="module")
def devset():
    """Eight development-set photos (real photographs behind photographed objects, exact alpha)."""
    return make_devset(n=8, size=512)


# ---------------------------------------------------------------- the shipped model


def test_model_ships_with_the_package_and_loads_offline():
    assert u2netp.MODEL_PATH.is_file() and u2netp.MODEL_PATH.stat().st_size == 4_574_861
    assert u2netp.sha256_file(u2netp.MODEL_PATH) == u2netp.MODEL_SHA256
    for name in ("LICENSE-u2netp.txt", "NOTICE-u2netp.txt"):
        assert (u2netp.MODEL_PATH.parent / name).is_file()
    m = u2netp.predict(Image.open(SAMPLES / "B07GTFSCHB_844a1cce.jpg"))
    assert m.shape == (320, 320) and m.dtype == np.float32 and m.min() == 0.0 and m.max() == 1.0


def test_damaged_model_is_one_clear_error(tmp_path):
    bad = tmp_path / "u2netp.onnx"
    shutil.copy(u2netp.MODEL_PATH, bad)
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(u2netp.U2NetError, match=r"is damaged: sha256 .* ADGEN_SEGMENTER=classical"):
        u2netp.load_net(bad)
    with pytest.raises(u2netp.U2NetError, match="cannot be read"):
        u2netp.load_net(tmp_path / "missing.onnx")


def test_rembg_baseline_is_the_model_map_resized(devset):
    c = devset[0]
    raw = u2netp.rembg_mask(c.image)
    assert raw.shape == c.alpha.shape and 0.0 <= raw.min() and raw.max() <= 1.0


# ---------------------------------------------------------------- cut-outs against known alpha


def test_default_cut_out_of_generated_photos_against_their_known_alpha(devset):
    """Products on real photographs (bridge, brushes, concrete, a wall, leaves, a room floor),
    a pair, a studio sweep and a close-up: the default's cut-outs against the exact alpha."""
    assert AdgenSettings().segmenter == "auto"
    seg = get_segmenter("auto")
    ours, raw = [], []
    for c in devset:
        cut = seg(c.image, SegmentParams())
        a = np.asarray(cut.mask, np.float32) / 255.0
        assert cut.rgba.size == c.image.size and cut.stats["path"] in ("u2netp", "classical")
        ours.append((iou(a, c.alpha), mae(a, c.alpha)))
        r = u2netp.rembg_mask(c.image)
        raw.append((iou(r, c.alpha), mae(r, c.alpha)))
        if c.kind != "closeup":
            assert ours[-1][0] > 0.9, (c.name, ours[-1])
    o, r = np.mean(ours, axis=0), np.mean(raw, axis=0)
    assert o[0] > 0.93 and o[1] < 0.02, o
    assert o[1] < r[1], (o, r)  # steeper edges: less alpha error than rembg's processing


def test_second_view_rescues_a_product_the_full_view_misreads():
    """A white mug before back-lit dandelions: at 320 px the model sees the bright handle hole,
    at 256 px the mug; the mug's outline follows the photo's edges, so it wins."""
    [c] = make_devset(only=[35])
    alpha, stats = u2netp.neural_alpha(np.asarray(c.image), SegmentParams())
    assert stats["second_view"] == "used" and stats["edge_alignment"][1] > stats["edge_alignment"][0]
    assert iou(alpha, c.alpha) > 0.85
    assert iou(u2netp.rembg_mask(c.image), c.alpha) < 0.5  # what the raw model gives


def test_close_up_of_a_fruit_is_a_detail_shot():
    [c] = make_devset(only=[26])  # an apricot filling the frame
    cut = cutout_auto(c.image)
    assert cut.stats["detail_shot"] is True and iou(np.asarray(cut.mask, np.float32) / 255.0, c.alpha) > 0.95
    assert iou(u2netp.rembg_mask(c.image), c.alpha) < 0.1


def test_real_photo_scene_goes_the_neural_way(devset):
    scene = next(c for c in devset if c.kind == "scene")
    cut = cutout_auto(scene.image)
    assert cut.stats["path"] == "u2netp" and cut.stats["why"] == "not a plain studio backdrop"
    assert iou(np.asarray(cut.mask, np.float32) / 255.0, scene.alpha) > 0.95


def test_studio_grid_of_white_bulbs_keeps_the_classical_cut_out():
    """16 white bulbs on white: the model barely sees them; the backdrop model does."""
    img = Image.open(SAMPLES / "B074M5HPBD_9ea6992d.jpg").convert("RGB")
    cut = cutout_auto(img)
    assert cut.stats["path"] == "classical" and "disagrees" in cut.stats["why"]
    a = np.asarray(cut.mask, np.float32) / 255.0
    assert 0.3 < float((a > 0.5).mean()) < 0.7


def test_detail_shot_keeps_the_whole_photo():
    """Nothing stands out in a close-up of a texture (a knit, a brick, gravel): the product fills the frame."""
    img = Image.open(DEVSET_BG / "skimage_gravel.jpg").convert("RGB")
    cut = u2netp.cutout_u2netp(img)
    assert cut.stats["detail_shot"] is True
    assert np.asarray(cut.mask).min() == 255
    assert check_cutout(cut, SegmentParams()).stats["gate"] == "ok"


def test_uploaded_alpha_is_kept():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((200, 30, 30, 255), (16, 16, 48, 48))
    cut = cutout_auto(rgba)
    assert cut.stats["source"] == "input_alpha"
    assert np.array_equal(np.asarray(cut.mask), np.asarray(rgba)[..., 3])


# ---------------------------------------------------------------- the quality gate


def _cut(alpha: np.ndarray, **stats) -> Cutout:
    a8 = (alpha * 255).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([np.full(alpha.shape + (3,), 128, np.uint8), a8]), "RGBA")
    return Cutout(rgba=rgba, mask=Image.fromarray(a8, "L"), stats={"source": "segmented", **stats})


def _box(h, w, y0, y1, x0, x1):
    a = np.zeros((h, w), np.float32)
    a[y0:y1, x0:x1] = 1.0
    return a


@pytest.mark.parametrize(
    "alpha, stats, reason",
    [
        (np.zeros((100, 100), np.float32), {}, "no product found"),
        (_box(200, 200, 100, 104, 100, 104), {}, r"only a speck \(0\.04% of the photo\)"),
        (_box(100, 100, 30, 70, 30, 70), {"uncertain_ratio": 1.4}, "unsure where the product ends"),
        (_box(100, 100, 0, 100, 0, 40), {}, "cut off by the photo's top, bottom, left edges"),
    ],
    ids=["nothing", "speck", "low-confidence", "cut-by-frame"],
)
def test_gate_rejects_untrustworthy_cut_outs(alpha, stats, reason):
    cut = _cut(alpha, **stats)
    with pytest.raises(CutoutRejected, match=reason) as err:
        check_cutout(cut, SegmentParams(), "shelf photo.jpg")
    msg = str(err.value)
    assert msg.startswith("shelf photo.jpg: no trustworthy cut-out") and "\n" not in msg
    assert "ADGEN_SEGMENTER=birefnet" in msg and "plain surface" in msg
    # switched off, the cut-out is kept and the reason recorded
    assert check_cutout(_cut(alpha, **stats), SegmentParams(gate=False)).stats["gate"] != "ok"


@pytest.mark.parametrize(
    "alpha, stats",
    [
        (_box(100, 100, 30, 70, 30, 70), {"uncertain_ratio": 0.1}),  # an ordinary product
        (_box(100, 100, 0, 100, 0, 70), {}),  # touches three sides but fills the frame: a detail shot
        (np.ones((100, 100), np.float32), {"detail_shot": True}),  # nothing stands out: the whole photo
        (_box(100, 100, 40, 100, 20, 80), {}),  # stands on the bottom edge (one side)
        (np.zeros((100, 100), np.float32), {"source": "input_alpha"}),  # the upload's own alpha: the user's call
    ],
    ids=["ordinary", "fills-frame", "detail-shot", "one-side", "input-alpha"],
)
def test_gate_passes_trustworthy_cut_outs(alpha, stats):
    cut = _cut(alpha, **stats)
    if "source" in stats:
        cut.stats["source"] = stats["source"]
    assert check_cutout(cut, SegmentParams()).stats["gate"] == "ok"


def test_frame_sides():
    assert frame_sides(_box(10, 10, 0, 10, 0, 3)) == ["top", "bottom", "left"]
    assert frame_sides(_box(10, 10, 3, 6, 3, 6)) == []


def test_gate_reason_of_a_blank_photo_through_auto():
    """A plain white photo: the studio path finds nothing, and the gate says so."""
    cut = cutout_auto(Image.new("RGB", (160, 120), (255, 255, 255)))
    assert "no product found" in gate_reason(np.asarray(cut.mask, np.float32) / 255.0, cut.stats, SegmentParams())


# ---------------------------------------------------------------- through Dagster


def test_untrustworthy_cut_out_fails_its_product_at_segmentation_with_the_reason_on_its_partitions_check(
        store, store_resource, instance, add_product):
    import dagster as dg

    from assets_defs import PIPELINE_ASSETS
    from tests.imagegen import blank
    from tests.test_check_partitions import check_statuses

    good = add_product("a-mug.jpg")
    bad = add_product("b blank shelf.png", data=blank((320, 240)))
    result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance,
                            tags={"dagster/asset_partition_range_start": good, "dagster/asset_partition_range_end": bad},
                            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                            raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "segmentation"
    msg = failure.step_failure_data.error.message
    assert (f"segmentation failed for product '{bad}': b blank shelf.png: no trustworthy cut-out: "
            "no product found to cut out") in msg
    assert "1 of 2 products in this batch failed" in msg
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "cutout_quality"]
    assert check.partition == bad and not check.passed  # one result, on the bad product's own partition
    assert (check.description or "").startswith(f"product {bad}: b blank shelf.png: no trustworthy cut-out")
    assert check_statuses(instance)["cutout_quality"] == {"passed": [], "failed": [bad]}  # as the UI shows it
    assert store.get_or_none(f"products/{good}/nobg_image.png") is not None  # the good one is done
    for name in ("nobg_image.png", "mask.png", "composite.png"):  # nothing downstream for the bad one
        assert store.get_or_none(f"products/{bad}/{name}") is None
