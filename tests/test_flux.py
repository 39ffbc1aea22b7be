"""The `flux` background backend on a tiny random FLUX pipeline, on the CPU, through its real loading code."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from adgen_dagster.imaging.backdrop import BackdropParams  # noqa: E402
from adgen_dagster.imaging.details import ProductDetails  # noqa: E402
from adgen_dagster.models import flux_check, flux_prompt  # noqa: E402
from adgen_dagster.models.flux import FluxBackground  # noqa: E402
from adgen_dagster.models.flux_check import transformer_step_error, vae_decode_error  # noqa: E402
from adgen_dagster.models.flux_prompt import build_prompt  # noqa: E402
from adgen_dagster.models.params import FluxParams, GpuSettings  # noqa: E402
from adgen_dagster.definitions import location_resources  # noqa: E402
from assets_defs import PIPELINE_ASSETS  # noqa: E402
from adgen_dagster.encoding import decode_png  # noqa: E402
from adgen_dagster.models.errors import ModelError  # noqa: E402
from adgen_dagster.models.host import ModelHost, host_for  # noqa: E402
from tests.tiny_models import build_tiny_flux  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = dict(steps=2, width=64, height=64, max_sequence_length=16)
PLAIN = dict(fuse_qkv=False, channels_last_vae=False, compile=False, fp8=False)
RED = ["#b03a2e", "#f2f2f2"]


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))


def pixels(img) -> np.ndarray:
    return np.asarray(img)


# --- the backend ----------------------------------------------------------------------------


def test_txt2img_and_img2img_give_the_requested_size_and_follow_the_seed(tiny_flux, caplog):
    caplog.set_level(logging.INFO, logger="adgen_dagster.models")
    host = ModelHost(GpuSettings(allow_cpu=True))
    details = ProductDetails(name="Red kettle", headline="Tea time", style="warm beige")
    out = BackdropParams(width=96, height=80)
    for i, mode in enumerate(("txt2img", "img2img")):
        render = FluxBackground(FluxParams(model=str(tiny_flux), mode=mode, progress_every=1, **TINY, **PLAIN), host)
        a = render(details, RED, out, seed=7)
        md = render.last_metadata
        b = render(details, RED, out, seed=7)
        c = render(details, RED, out, seed=8)
        assert a.mode == "RGB" and a.size == (96, 80)
        assert np.array_equal(pixels(a), pixels(b)), mode
        assert not np.array_equal(pixels(a), pixels(c)), mode
        assert md["mode"] == mode and md["device"] == "cpu" and md["dtype"] == "float32" and md["seed"] == 7
        assert md["steps"] == 2 and md["guidance"] == 3.5 and md["inference_ms"] > 0
        assert "Red kettle" in md["prompt"] and "warm beige" in md["prompt"]
        assert md["fast_path"] == "off"
        assert ("strength" in md) == (mode == "img2img")
        # one load serves both modes (img2img shares the txt2img pipeline's components)
        assert ("load_ms" in md) == (i == 0) and "load_ms" not in render.last_metadata
    assert host.loads == 1
    assert "flux step 2/2" in caplog.text


def test_fast_path_on_the_cpu_applies_what_it_can_and_says_why_not_the_rest(tiny_flux):
    host = ModelHost(GpuSettings(allow_cpu=True))
    params = FluxParams(model=str(tiny_flux), mode="img2img", first_block_cache=0.05, true_cfg_scale=2.0,
                        negative_prompt="text, <b>logo</b>", **TINY).fast()
    render = FluxBackground(params, host)
    img = render(ProductDetails(), RED, BackdropParams(width=64, height=64), seed=1)
    md = render.last_metadata
    assert img.size == (64, 64)
    assert md["fast_path"] == "fuse_qkv, channels_last_vae, first_block_cache(0.05)"
    assert "compile: needs a CUDA GPU" in md["fast_path_fallbacks"]
    assert "fp8: needs a CUDA GPU" in md["fast_path_fallbacks"]
    # diffusers' img2img pipeline runs both CFG passes in one step-cache context: true CFG is refused, and said so
    assert md["true_cfg"].startswith("ignored") and "ADGEN_FLUX__FIRST_BLOCK_CACHE" in md["true_cfg"]
    # txt2img opens a context per pass: the negative prompt goes in (same loaded pipelines: mode is not in the key)
    render = FluxBackground(params.model_copy(update={"mode": "txt2img"}), host)
    assert render(ProductDetails(), RED, BackdropParams(width=64, height=64), seed=1).size == (64, 64)
    md = render.last_metadata
    assert md["true_cfg_scale"] == 2.0 and md["negative_prompt"] == "text, logo" and host.loads == 1


def test_nothing_loads_before_the_first_call(tiny_flux):
    host = ModelHost(GpuSettings(allow_cpu=True))
    FluxBackground(FluxParams(model=str(tiny_flux)), host)
    assert host.loads == 0 and host.loaded() == {}


def test_missing_weights_and_missing_gpu_name_the_setting(tmp_path):
    host = ModelHost(GpuSettings(allow_cpu=True))
    with pytest.raises(ModelError, match="ADGEN_FLUX__MODEL"):
        FluxBackground(FluxParams(model=str(tmp_path / "nowhere")), host)(ProductDetails(), RED, BackdropParams())
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(ModelError, match="ADGEN_FLUX__MODEL"):
        FluxBackground(FluxParams(model=str(tmp_path / "half")), host)(ProductDetails(), RED, BackdropParams())
    if not torch.cuda.is_available():
        strict = ModelHost(GpuSettings(allow_cpu=False))
        with pytest.raises(ModelError, match="ADGEN_GPU__ALLOW_CPU"):
            FluxBackground(FluxParams(model=str(tmp_path / "nowhere")), strict)(ProductDetails(), RED, BackdropParams())


# --- the prompt -----------------------------------------------------------------------------


def test_prompt_is_built_from_the_details_and_sanitised():
    details = ProductDetails(name="여름 한정 머그컵 <script>alert('x')</script>", style="따뜻한 우드 {subject}\x00\n톤")
    prompt = build_prompt(details)
    assert "여름 한정 머그컵" in prompt and "따뜻한 우드" in prompt and "톤" in prompt
    assert "<" not in prompt and ">" not in prompt and "script" not in prompt
    assert "\x00" not in prompt and "\n" not in prompt and "{" not in prompt
    assert prompt.startswith("professional product photography backdrop for 여름")
    # every field bounded, and the whole prompt too
    long = ProductDetails(name="kettle " * 28, style="glossy " * 28)
    assert len(build_prompt(long)) <= flux_prompt.MAX_PROMPT_CHARS
    assert build_prompt(long).count("kettle") <= flux_prompt.MAX_SUBJECT_CHARS // 7
    assert len(build_prompt(long, "{subject} " * 100)) <= flux_prompt.MAX_PROMPT_CHARS
    # defaults, the headline as a fallback subject, a category when the details have one, a custom template
    assert "a product" in build_prompt(ProductDetails()) and "neutral soft tones" in build_prompt(ProductDetails())
    assert build_prompt(ProductDetails(headline="Tea time"), "{subject} | {style} | {other}") == \
        "Tea time | neutral soft tones | (other)"
    categorised = ProductDetails(name="Kettle")
    object.__setattr__(categorised, "category", "kitchenware")
    assert "Kettle (kitchenware)" in build_prompt(categorised)


# --- the numerical check --------------------------------------------------------------------


def _modules(folder: Path, device="cpu", dtype=None):
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    dtype = dtype or torch.float32
    transformer = FluxTransformer2DModel.from_pretrained(folder / "transformer").to(device, dtype).eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").to(device, dtype).eval()
    return transformer, vae


def test_fused_qkv_and_channels_last_compute_the_same_function(tiny_flux):
    transformer, vae = _modules(tiny_flux)
    check = transformer_step_error(transformer, FluxParams(**TINY).fast(), height=64, width=64, text_len=16)
    assert check.applied == ["fuse_qkv"] and check.ok, str(check)
    assert check.max_rel_err < 1e-5 and len(check.rel_err) == 3
    assert set(check.fallbacks) == {"compile", "fp8"}  # CPU: both say why
    attn = transformer.transformer_blocks[0].attn
    assert attn.fused_projections and not hasattr(attn, "to_q") and not hasattr(attn, "add_q_proj")
    check = vae_decode_error(vae, FluxParams(fuse_qkv=True, channels_last_vae=True), height=64, width=64)
    assert check.applied == ["fuse_qkv", "channels_last_vae"] and check.max_rel_err < 1e-5, str(check)


def _fp8_ready() -> bool:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        return False
    return importlib.util.find_spec("torchao") is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.compile of the FLUX modules runs on a CUDA GPU only")
def test_compiled_transformer_and_vae_compute_the_same_function_on_gpu(tiny_flux, tmp_path):
    transformer, vae = _modules(tiny_flux, "cuda", torch.bfloat16)
    params = FluxParams(compile=True, compile_mode="default", compile_cache_dir=str(tmp_path), fuse_qkv=True)
    check = transformer_step_error(transformer, params, height=64, width=64, text_len=16)
    assert "compile" in check.applied and check.max_rel_err <= flux_check.REL_ERR_BF16, str(check)
    check = vae_decode_error(vae, params, height=64, width=64)
    assert "compile" in check.applied and check.max_rel_err <= flux_check.REL_ERR_BF16, str(check)


@pytest.mark.skipif(not _fp8_ready(), reason="fp8 needs a CUDA GPU of compute capability 8.9+ and torchao")
def test_fp8_transformer_stays_within_its_bound_on_gpu(tiny_flux):
    transformer, _ = _modules(tiny_flux, "cuda", torch.bfloat16)
    check = transformer_step_error(transformer, FluxParams(fp8=True), height=64, width=64, text_len=16)
    assert check.applied == ["fp8"] and check.max_rel_err <= flux_check.REL_ERR_FP8, str(check)


# --- the asset ------------------------------------------------------------------------------


def materialize(pid, store_resource, instance, flux_config: dict, allow_cpu: bool = True):
    return dg.materialize(
        PIPELINE_ASSETS,
        selection=["product_image", "background"],
        partition_key=pid,
        resources=location_resources(store_resource),
        instance=instance,
        run_config={
            "resources": {"gpu": {"config": {"allow_cpu": allow_cpu}}},
            "ops": {"background": {"config": {"backend": "flux", "width": 128, "height": 128, "flux": flux_config}}},
        },
        raise_on_error=False,
    )


def background_metadata(result) -> dict:
    [ev] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "background"]
    return {k: v.value for k, v in ev.step_materialization_data.materialization.metadata.items()}


def failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def test_background_asset_with_flux_then_a_cache_hit_that_loads_nothing(tiny_flux, store, store_resource, instance,
                                                                        add_product):
    pid = add_product("red-kettle.jpg", details={"name": "Red kettle", "style": "warm beige"})
    host = host_for(GpuSettings(allow_cpu=True))
    for key in [k for k in host.loaded() if k.startswith("flux:")]:
        host.unload(key)
    config = {"model": str(tiny_flux), **TINY}
    first = materialize(pid, store_resource, instance, config)
    assert first.success, failure_messages(first)
    md = background_metadata(first)
    assert md["backend"] == "flux" and md["cache"] == "miss" and md["device"] == "cpu" and md["mode"] == "img2img"
    assert md["load_ms"] > 0 and md["inference_ms"] > 0 and "Red kettle" in md["prompt"]
    assert decode_png(store.get(f"products/{pid}/background.png")).size == (128, 128)
    loads = host.loads
    again = materialize(pid, store_resource, instance, config)
    assert again.success, failure_messages(again)
    assert background_metadata(again)["cache"] == "hit"
    assert host.loads == loads


def test_background_asset_failures_name_the_setting(tmp_path, store_resource, instance, add_product):
    pid = add_product("mug.jpg")
    result = materialize(pid, store_resource, instance, {"model": str(tmp_path / "no-weights"), **TINY})
    assert not result.success
    [msg] = failure_messages(result)
    assert "background failed for product 'mug'" in msg and "ADGEN_FLUX__MODEL" in msg
    if not torch.cuda.is_available():
        result = materialize(pid, store_resource, instance, {"model": str(tmp_path / "no-weights"), **TINY},
                             allow_cpu=False)
        assert not result.success and "ADGEN_GPU__ALLOW_CPU" in failure_messages(result)[0]


# --- the benchmark and the image comparison -------------------------------------------------


def test_bench_rows_run_on_the_cpu_with_the_tiny_config():
    from bench.gpu_flux import CONFIGS, flux_rows, flux_step_error_rows

    rows = flux_rows("cpu", tiny=True, repeats=1, log=None)
    assert [r.name for r in rows] == [name for name, _ in CONFIGS]
    assert {"plain diffusers", "reference (model CPU offload)", "+ fuse_qkv", "+ channels_last_vae", "+ compile",
            "+ fp8", "full fast path"} <= {r.name for r in rows}
    for r in rows:
        assert r.first_s > 0 and r.s_per_image > 0 and r.ratio > 0, r
    assert rows[0].ratio == 1.0
    assert "compile: needs a CUDA GPU" in {r.name: r.note for r in rows}["+ compile"]
    checks = dict(flux_step_error_rows("cpu", tiny=True))
    assert len(checks) == 5 and all(c.ok for c in checks.values()), {k: str(c) for k, c in checks.items()}


def test_psnr_and_ssim_of_the_image_comparison_script():
    spec = importlib.util.spec_from_file_location("compare_flux_images", REPO / "scripts" / "compare_flux_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    a = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    assert mod.psnr(a, a) == float("inf") and mod.ssim(a, a) == pytest.approx(1.0)
    assert 25 < mod.psnr(a, noisy) < 35 and 0.3 < mod.ssim(a, noisy) < 0.99
    texture = rng.integers(0, 256, a.shape).astype(np.uint8)
    assert mod.ssim(texture, 255 - texture) < 0.0 < mod.ssim(texture, np.clip(texture.astype(int) + 20, 0, 255))
    with pytest.raises(ValueError):
        mod.ssim(a, a[:32])


def test_gpu_bench_product_row_runs_the_backends_with_resident_models_on_tiny_configs(capsys):
    """bench/gpu.py's product table on tiny configs: the same code the GPU run uses, models handed to the host."""
    from bench.gpu import product_rows

    rows = product_rows("cpu", tiny=True, repeats=1, birefnet_dir=None, qwen_tokens=16)
    stages = [r[0] for r in rows]
    assert stages[:4] == ["segmentation", "background", "composite + retouch (CPU)", "analysis"]
    assert all(r[1] > 0 and r[2] >= 0 for r in rows)
    assert rows[0][3] == "BiRefNet" and "FLUX img2img" in rows[1][3]
    assert rows[4][0] == "GPU stages, models resident" and rows[4][3] == "models loaded from disk: 1"  # only tiny BiRefNet
