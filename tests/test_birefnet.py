"""The `birefnet` segmenter through its real loading code on a tiny remote-code model (CPU)."""

import dagster as dg
import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch", reason="the neural backends need torch (pip install -e '.[neural]')")
pytest.importorskip("transformers")

from adgen_dagster.models.birefnet import BiRefNetSegmenter  # noqa: E402
from adgen_dagster.models.params import BiRefNetParams, GpuSettings  # noqa: E402
from adgen_dagster.definitions import location_resources  # noqa: E402
from assets_defs import PIPELINE_ASSETS  # noqa: E402
from adgen_dagster.encoding import decode_png  # noqa: E402
from adgen_dagster.models.errors import ModelError  # noqa: E402
from adgen_dagster.models.host import ModelHost, host_for  # noqa: E402
from tests.imagegen import encode  # noqa: E402
from tests.tiny_birefnet import build_tiny_birefnet  # noqa: E402


@pytest.fixture(scope="session")
def birefnet_dir(tmp_path_factory):
    return build_tiny_birefnet(tmp_path_factory.mktemp("models") / "birefnet")


@pytest.fixture
def host(tmp_path):
    return ModelHost(GpuSettings(allow_cpu=True, lock_dir=str(tmp_path)))


def disc(size=(300, 200), box=(80, 40, 220, 160), colour=(200, 40, 40)):
    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).ellipse(box, fill=colour)
    truth = Image.new("L", size, 0)
    ImageDraw.Draw(truth).ellipse(box, fill=255)
    return img, np.asarray(truth) > 127


def test_remote_code_model_without_post_init_loads_and_segments(birefnet_dir, host):
    assert "post_init" not in (birefnet_dir / "birefnet.py").read_text().replace("no self.post_init()", "")
    seg = BiRefNetSegmenter(BiRefNetParams(model=str(birefnet_dir), input_size=256), host)
    img, truth = disc()
    cut = seg(img)
    assert cut.rgba.size == img.size and cut.mask.size == img.size and cut.rgba.mode == "RGBA"
    mask = np.asarray(cut.mask) > 127
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.95, iou
    # The foreground colour is re-estimated: soft edge pixels carry much less of the old
    # white background than the raw photo does (green channel: product 40, background 255).
    a = np.asarray(cut.mask).astype(np.float32) / 255
    rgb = np.asarray(cut.rgba)[..., :3].astype(np.float32)
    edge = (a > 0.05) & (a < 0.95)
    assert edge.sum() > 50
    ours = np.abs(rgb[edge][:, 1] - 40).mean()
    naive = np.abs(np.asarray(img, dtype=np.float32)[edge][:, 1] - 40).mean()
    assert ours < 0.6 * naive, (ours, naive)
    md = seg.last_metadata
    assert md["device"] == "cpu" and md["dtype"] == "float32" and md["load_ms"] > 0 and md["inference_ms"] > 0
    assert host.loads == 1
    seg(img)
    assert host.loads == 1 and "load_ms" not in seg.last_metadata  # loaded once, kept


def test_batch_equals_one_by_one_and_keeps_each_size(birefnet_dir, host):
    seg = BiRefNetSegmenter(BiRefNetParams(model=str(birefnet_dir), input_size=128, batch_size=2), host)
    imgs = [disc(size, box)[0] for size, box in [((300, 200), (80, 40, 220, 160)), ((120, 160), (20, 30, 100, 140)),
                                                  ((90, 90), (10, 10, 60, 80))]]
    together = seg.batch(imgs)
    assert seg.last_metadata["batch"] == 3
    for img, cut in zip(imgs, together):
        alone = seg(img)
        assert cut.mask.size == img.size
        assert np.abs(np.asarray(cut.mask, dtype=int) - np.asarray(alone.mask, dtype=int)).max() <= 1


def test_informative_alpha_is_kept(birefnet_dir, host):
    seg = BiRefNetSegmenter(BiRefNetParams(model=str(birefnet_dir), input_size=128), host)
    img, truth = disc()
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray((truth * 255).astype(np.uint8)))
    cut = seg(rgba)
    assert (np.asarray(cut.mask) > 127).tolist() == truth.tolist()
    assert host.loads == 0  # nothing to segment, nothing loaded


def test_missing_weights_and_missing_gpu_name_the_setting(tmp_path, birefnet_dir):
    cpu_host = ModelHost(GpuSettings(lock_dir=str(tmp_path)))  # allow_cpu false, and this machine has no GPU
    if cpu_host.device.type != "cpu":
        pytest.skip("this machine has a GPU")
    img, _ = disc()
    with pytest.raises(ModelError, match="ADGEN_GPU__ALLOW_CPU"):
        BiRefNetSegmenter(BiRefNetParams(model=str(birefnet_dir)), cpu_host)(img)
    ok_host = ModelHost(GpuSettings(allow_cpu=True, lock_dir=str(tmp_path)))
    with pytest.raises(ModelError, match="ADGEN_BIREFNET__MODEL='nobody/no-such-model': weights not found"):
        BiRefNetSegmenter(BiRefNetParams(model="nobody/no-such-model"), ok_host)(img)
    with pytest.raises(ModelError, match="ADGEN_BIREFNET__MODEL.*no config.json"):
        BiRefNetSegmenter(BiRefNetParams(model=str(tmp_path)), ok_host)(img)


def neural_config(birefnet_dir, **birefnet):
    return {
        "resources": {"gpu": {"config": {"allow_cpu": True}}},
        "ops": {"segmentation": {"config": {"backend": "birefnet",
                                            "birefnet": {"model": str(birefnet_dir), "input_size": 128, **birefnet}}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def materialize_range(pids, store_resource, instance, run_config):
    return dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance, run_config=run_config,
                          tags={"dagster/asset_partition_range_start": pids[0], "dagster/asset_partition_range_end": pids[-1]},
                          raise_on_error=False, selection=["product_image", "nobg_image", "mask"])


def test_assets_with_birefnet_batch_a_run_and_load_once(store, store_resource, instance, add_product, birefnet_dir):
    pids = [add_product(f"p{i}.png", data=encode(disc(colour=(40 * i, 60, 200))[0], "PNG")) for i in range(3)]
    host = host_for(GpuSettings(allow_cpu=True))
    loads = host.loads
    result = materialize_range(pids, store_resource, instance, neural_config(birefnet_dir, batch_size=2))
    assert result.success
    assert host.loads - loads <= 1  # one load for the whole run (none if an earlier test loaded it)
    mats = {(e.asset_key.path[-1], e.partition): e.materialization for e in result.get_asset_materialization_events()}
    assert {p for (a, p) in mats if a == "mask"} == set(pids)
    md = mats[("mask", pids[0])].metadata
    assert md["backend"].value == "birefnet" and md["cache"].value == "miss"
    per_product = md["per_product"].value  # a batch is one materialization: each product's own values
    assert set(per_product) == set(pids) and len({p["cache_key"] for p in per_product.values()}) == 3
    assert all(p["cache"] == "miss" and 0.15 < p["coverage"] < 0.35 for p in per_product.values())
    nobg = mats[("nobg_image", pids[0])].metadata
    for pid in pids:
        mask = np.asarray(decode_png(store.get(f"products/{pid}/mask.png"))) > 127
        assert 0.15 < mask.mean() < 0.35
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("2 product(s) computed in batches of up to 2" in m or "3 product(s) computed in batches" in m for m in logs), logs
    assert "width" in nobg

    # Again, nothing changed: every product is a cache hit and no model is loaded.
    host.clear()
    loads = host.loads
    result = materialize_range(pids, store_resource, instance, neural_config(birefnet_dir, batch_size=2))
    assert result.success and host.loads == loads
    hits = [e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "mask"]
    assert {m["cache"].value for m in hits} == {"hit"}
    assert "load_ms" not in hits[0] and "inference_ms" not in hits[0]  # nothing was loaded or run this time
    # The settings that decide the output are in the key; the batch size is not.
    result = materialize_range(pids, store_resource, instance, neural_config(birefnet_dir, batch_size=3))
    assert {e.materialization.metadata["cache"].value for e in result.get_asset_materialization_events()
            if e.asset_key.path[-1] == "mask"} == {"hit"}
    result = materialize_range(pids, store_resource, instance, neural_config(birefnet_dir, input_size=96))
    assert {e.materialization.metadata["cache"].value for e in result.get_asset_materialization_events()
            if e.asset_key.path[-1] == "mask"} == {"miss"}


def test_out_of_memory_fails_only_that_product(store, store_resource, instance, add_product, birefnet_dir, monkeypatch):
    good = add_product("a-good.png", data=encode(disc()[0], "PNG"))
    bad = add_product("b-huge.png", data=encode(disc(size=(333, 222), box=(50, 50, 200, 180))[0], "PNG"))
    real = BiRefNetSegmenter._inputs

    def inputs(self, images):
        if any(img.size == (333, 222) for img in images):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, images)

    monkeypatch.setattr(BiRefNetSegmenter, "_inputs", inputs)
    # One product at a time after the failed batch, the good one first, so the bad one's OOM is the model's last
    # use (with two in flight the good one may load the model again after the unload, as it should).
    monkeypatch.setenv("ADGEN_RUN_WORKERS", "1")
    result = materialize_range([good, bad], store_resource, instance, neural_config(birefnet_dir, batch_size=2))
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1
    msg = failures[0].step_failure_data.error.message
    assert f"segmentation failed for product '{bad}': out of memory on cpu" in msg
    assert "ADGEN_GPU__MEMORY_BUDGET_GB" in msg and "ADGEN_BIREFNET__BATCH_SIZE" in msg
    assert store.get_or_none(f"products/{good}/mask.png") is not None
    assert store.get_or_none(f"products/{bad}/mask.png") is None
    assert host_for(GpuSettings(allow_cpu=True)).loaded() == {}  # the OOM unloaded the models


def test_missing_weights_fail_the_partition_naming_the_setting(store_resource, instance, add_product, tmp_path):
    pid = add_product("lamp.png", data=encode(disc()[0], "PNG"))
    result = materialize_range([pid], store_resource, instance, neural_config(tmp_path / "nowhere"))
    assert not result.success
    msg = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure][0]
    assert f"segmentation failed for product '{pid}'" in msg and "ADGEN_BIREFNET__MODEL" in msg


def test_cutout_command_with_birefnet_never_imports_dagster(tmp_path, birefnet_dir):
    """The command line uses the same backend, on the same host, and still does not need Dagster."""
    import os
    import subprocess
    import sys

    src = tmp_path / "lamp.png"
    disc()[0].save(src)
    code = ("import sys; from adgen_dagster.cli import main\n"
            f"assert main(['cutout', {str(src)!r}, {str(tmp_path / 'o.png')!r}, '--segmenter', 'birefnet', '-q']) == 0\n"
            "print('DAGSTER', sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n")
    env = {**os.environ, "ADGEN_BIREFNET__MODEL": str(birefnet_dir), "ADGEN_BIREFNET__INPUT_SIZE": "256",
           "ADGEN_GPU__ALLOW_CPU": "true", "ADGEN_GPU__LOCK_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "DAGSTER []"
    mask = np.asarray(Image.open(tmp_path / "o.png"))[..., 3] > 127
    truth = disc()[1]
    assert (mask & truth).sum() / (mask | truth).sum() > 0.95
