"""GPU benchmark: our neural path next to plain diffusers / transformers, in one run.

    python bench/gpu.py                       # on a CUDA GPU: every table below, full-size random weights
    python bench/gpu.py --only flux --repeats 1
    python bench/gpu.py --only product        # one product through the GPU stages, models resident
    python bench/gpu.py --only first-image    # a new process's first image: empty vs warm compile cache
    python bench/gpu.py --tiny                # the same code on tiny configs, on the CPU, in seconds

Tables:

1. FLUX.1-dev (transformer + VAE, random weights, 1024x1024, 50 steps, guidance 3.5): plain
   `FluxPipeline`, the reference configuration (model CPU offload), each fast-path piece
   added one at a time, the full fast path; first call (compile) apart; peak memory; and
   the numerical check of one transformer step vs the eager bf16 model (`bench/gpu_flux.py`).
2. Qwen2-VL-7B (random weights) answering for one 1024x1024 image, exactly 200 new tokens:
   plain transformers usage vs the analyzer's path (`bench/gpu_qwen.py`).
3. One product through segmentation, background and analysis with the models resident in
   one `ModelHost`, through the backends the assets call (`BiRefNetSegmenter`,
   `FluxBackground` with the fast path and the default img2img strength, `QwenAnalyzer`),
   plus the CPU stages between them. BiRefNet's code is remote code on the hub, not in this
   repository: pass `--birefnet-dir` (a BiRefNet snapshot) for that stage, else its row
   says it was not run. FLUX's text encoders (CLIP-L, T5-XXL) are built at full size with
   random weights too; their tokenizers are small stand-ins (the T5 input is padded to 512
   tokens either way, so the arithmetic is the same).

4. The first FLUX image in a new process with the full fast path, twice: with an empty
   compile cache and with the cache the first process left (random weights are built on
   the GPU in place of loading them from disk).

Random weights do the same arithmetic as real ones, so the timings hold; the images and
answers are noise (Qwen's answer never parses, so the product row runs one attempt of
`--qwen-tokens` tokens, about what the compact JSON answer takes).

Each full-size table takes minutes (compiles included); on a machine whose commands are
limited to 10 minutes run them one at a time with `--only`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import print_table  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "adgen_dagster" / "samples"


def _torch():
    import torch

    return torch


def _sync(device) -> None:
    torch = _torch()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _stub_folder(root: Path, name: str, marker: str) -> Path:
    """A folder the backends' `locate()` accepts; the models themselves are handed to the host."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text(json.dumps({"note": "random weights, built by bench/gpu.py"}))
    return folder


def flux_pipes_with_text_encoders(device, dtype, params, tiny: bool):
    """The `FluxBackground` pipelines (txt2img, img2img, fast path) on random full-size weights."""
    from diffusers import FluxImg2ImgPipeline, FluxPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from adgen_dagster.models.flux import _Pipes
    from adgen_dagster.models.flux_fast_path import apply_fast_path
    from bench.gpu_flux import build_pipeline
    from tests.tiny_models import _clip_tokenizer, _t5_tokenizer

    torch = _torch()
    base = build_pipeline(device, dtype, tiny=tiny)
    clip_tok, t5_tok = _clip_tokenizer(), _t5_tokenizer()
    if tiny:
        clip_cfg = CLIPTextConfig(vocab_size=len(clip_tok), hidden_size=base.transformer.config.pooled_projection_dim,
                                  intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                                  max_position_embeddings=77, projection_dim=32)
        t5_cfg = T5Config(vocab_size=len(t5_tok), d_model=base.transformer.config.joint_attention_dim, d_kv=8, d_ff=37,
                          num_layers=1, num_heads=4, relative_attention_num_buckets=8)
    else:  # CLIP ViT-L/14 text tower and T5 v1.1 XXL encoder, as FLUX.1-dev ships them
        clip_cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                  num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                                  hidden_act="quick_gelu")
        t5_cfg = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                          feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True)
    with torch.device(device):
        clip = CLIPTextModel._from_config(clip_cfg, dtype=dtype).eval()
        t5 = T5EncoderModel._from_config(t5_cfg, dtype=dtype).eval()
    pipe = FluxPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=clip, tokenizer=clip_tok,
                        text_encoder_2=t5, tokenizer_2=t5_tok, transformer=base.transformer)
    pipe.set_progress_bar_config(disable=True)
    img2img = FluxImg2ImgPipeline.from_pipe(pipe, dtype=dtype)
    img2img.set_progress_bar_config(disable=True)
    return _Pipes(pipe, img2img, apply_fast_path(pipe, params, device, dtype))


def product_rows(device, tiny: bool, repeats: int, birefnet_dir: Optional[str], qwen_tokens: int, fast: bool = True):
    """Rows (stage, first call s, resident s, note) for one sample product through every stage."""
    from PIL import Image

    from adgen_dagster.imaging import composite, retouch
    from adgen_dagster.imaging.analysis_params import AnalysisParams
    from adgen_dagster.imaging.backdrop import BackdropParams
    from adgen_dagster.imaging.details import ProductDetails
    from adgen_dagster.imaging.palette import product_colours
    from adgen_dagster.imaging.segment import SegmentParams, cutout_classical
    from adgen_dagster.models.birefnet import BiRefNetSegmenter
    from adgen_dagster.models.flux import FluxBackground
    from adgen_dagster.models.params import BiRefNetParams, FluxParams, GpuSettings, QwenParams
    from adgen_dagster.models.qwen_vl import QwenAnalyzer
    from bench.gpu_qwen import build_full_qwen2_vl
    from adgen_dagster.models.host import ModelHost

    root = Path(tempfile.mkdtemp(prefix="adgen-gpu-bench-"))
    host = ModelHost(GpuSettings(device=str(device), allow_cpu=True, lock_dir=str(root)))
    dtype = host.dtype
    size = 64 if tiny else 1024

    entry = json.loads((SAMPLES / "catalog.json").read_text())[0]  # a sample photo and its details
    photo = Image.open(SAMPLES / entry["photo"]).convert("RGB")
    photo.thumbnail((size, size))
    details = ProductDetails.model_validate(entry.get("details") or {})

    # BiRefNet: a real snapshot if given (its code is remote code), the tiny test model in --tiny.
    seg = None
    if birefnet_dir or tiny:
        folder = birefnet_dir
        if folder is None:
            from tests.tiny_birefnet import build_tiny_birefnet

            folder = str(build_tiny_birefnet(root / "birefnet"))
        seg = BiRefNetSegmenter(BiRefNetParams(model=folder, input_size=64 if tiny else 1024), host)

    flux_params = FluxParams(model=str(_stub_folder(root, "flux", "model_index.json")), width=size, height=size,
                             steps=2 if tiny else 50, max_sequence_length=16 if tiny else 512, progress_every=0)
    if fast:
        flux_params = flux_params.fast()
    bg = FluxBackground(flux_params, host)
    t = time.perf_counter()
    host.put(bg.key(Path(flux_params.model)), flux_pipes_with_text_encoders(host.device, dtype, flux_params, tiny))
    flux_build = time.perf_counter() - t

    qwen_params = QwenParams(model=str(_stub_folder(root, "qwen", "config.json")), image_size=112 if tiny else 1024,
                             max_new_tokens=qwen_tokens, retries=0)
    if fast:
        qwen_params = qwen_params.fast()
    ana = QwenAnalyzer(qwen_params, host)
    t = time.perf_counter()
    host.put(f"qwen2-vl:{Path(qwen_params.model).resolve()}", build_full_qwen2_vl(host.device, dtype, tiny=tiny))
    qwen_build = time.perf_counter() - t
    print(f"product: models built on {host.device} in {flux_build:.1f} s (FLUX + text encoders) and "
          f"{qwen_build:.1f} s (Qwen2-VL); resident: {', '.join(host.loaded())}")

    backdrop_params = BackdropParams(width=size, height=size)

    def one_product() -> dict[str, float]:
        times: dict[str, float] = {}
        t = time.perf_counter()
        cut = seg(photo, SegmentParams()) if seg is not None else cutout_classical(photo, SegmentParams())
        _sync(host.device)
        times["segmentation"] = time.perf_counter() - t
        t = time.perf_counter()
        back = bg(details, product_colours(photo), backdrop_params, seed=details.seed_for("bench"))
        _sync(host.device)
        times["background"] = time.perf_counter() - t
        t = time.perf_counter()
        placed = composite.composite(cut.rgba, back, composite.CompositeParams(width=size, height=size))
        final = retouch.retouch(placed.image, placed.mask, back, retouch.RetouchParams())
        times["composite + retouch (CPU)"] = time.perf_counter() - t
        t = time.perf_counter()
        ana(final, placed.mask, AnalysisParams())
        _sync(host.device)
        times["analysis"] = time.perf_counter() - t
        return times

    first = one_product()
    runs = [one_product() for _ in range(max(1, repeats))]
    loads = host.loads
    rows = []
    notes = {
        "segmentation": "BiRefNet" if seg is not None else "classical (no --birefnet-dir: BiRefNet not run)",
        "background": f"FLUX {flux_params.mode}, strength {flux_params.strength}, {flux_params.steps} steps"
                      + (f", fast path: {bg.last_metadata.get('fast_path', '')}" if fast else ", plain"),
        "analysis": f"Qwen2-VL, {qwen_tokens} new tokens, 1 attempt"
                    + (", static cache + compile" if fast and host.device.type == "cuda" else ""),
    }
    for stage in first:
        rows.append([stage, round(first[stage], 3), round(statistics.median(r[stage] for r in runs), 3), notes.get(stage, "")])
    gpu = ("segmentation", "background", "analysis")
    rows.append(["GPU stages, models resident", round(sum(first[s] for s in gpu), 3),
                 round(statistics.median(sum(r[s] for s in gpu) for r in runs), 3), f"models loaded from disk: {loads}"])
    rows.append(["whole product", round(sum(first.values()), 3),
                 round(statistics.median(sum(r.values()) for r in runs), 3), ""])
    return rows


def first_image_child(cache_dir: str, tiny: bool, steps: int) -> None:
    """In a fresh process: build FLUX, apply the full fast path (compile cache in `cache_dir`), make one image."""
    t0 = time.perf_counter()
    from adgen_dagster.models.flux_fast_path import apply_fast_path
    from bench.gpu_flux import FLUX_TEXT_LEN, TINY_TEXT_LEN, build_pipeline, prompt_embeds

    torch = _torch()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    size, text_len = (64, TINY_TEXT_LEN) if tiny else (1024, FLUX_TEXT_LEN)
    pipe = build_pipeline(device, dtype, tiny=tiny)
    _sync(device)
    built = time.perf_counter() - t0
    from adgen_dagster.models.params import FluxParams

    fast = apply_fast_path(pipe, FluxParams(compile_cache_dir=cache_dir).fast(), device, dtype)
    embeds, pooled = prompt_embeds(pipe.transformer, device, dtype, text_len)
    with torch.inference_mode():
        pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=size, width=size, num_inference_steps=steps,
             guidance_scale=3.5, max_sequence_length=text_len, generator=torch.Generator("cpu").manual_seed(0))
    _sync(device)
    if fast.compiled:
        fast.save_compile_cache()
    print(json.dumps({"total_s": time.perf_counter() - t0, "build_s": built, "applied": fast.summary()}))


def first_image_rows(tiny: bool, steps: int) -> list[list]:
    """The first image in a new process, twice: with an empty compile cache, then with the cache the first left."""
    import subprocess

    cache = tempfile.mkdtemp(prefix="adgen-compile-cache-")
    rows = []
    for label in ("empty compile cache (first run on a machine)", "warm compile cache (every later process)"):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--first-image-child", cache, "--steps", str(steps)]
                             + (["--tiny"] if tiny else []), capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - t
        doc = json.loads(out.strip().splitlines()[-1])
        rows.append([label, round(wall, 1), round(doc["total_s"], 1), round(doc["build_s"], 1),
                     str(doc["applied"].get("fast_path", ""))[:60]])
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="flux,qwen,product,first-image",
                    help="comma-separated: flux, qwen, product, first-image")
    ap.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (a smoke run of the same code)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--birefnet-dir", default=None, help="a BiRefNet snapshot folder (code + weights) for the product row")
    ap.add_argument("--qwen-tokens", type=int, default=120, help="answer length in the product row")
    ap.add_argument("--first-image-child", metavar="CACHE_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.first_image_child:
        first_image_child(args.first_image_child, args.tiny, 2 if args.tiny else args.steps)
        return 0
    torch = _torch()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.tiny:
        print("no CUDA GPU here: full-size models on the CPU would take hours; use --tiny for a smoke run")
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    what = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    print(f"bench/gpu.py on {what}, torch {torch.__version__}{', tiny configs' if args.tiny else ''}")

    if "flux" in only:
        from bench.gpu_flux import flux_rows, flux_step_error_rows, print_rows

        size, steps = (64, 2) if args.tiny else (1024, args.steps)
        rows = flux_rows(device, steps=steps, size=size, repeats=args.repeats, tiny=args.tiny)
        print_rows(rows, f"FLUX.1-dev transformer + VAE, random weights, {size}x{size}, {steps} steps "
                         f"(ratio: s/image over plain diffusers)")
        print("\nNumerical check: one transformer step (and the VAE decode) vs the eager model, same inputs:")
        for name, check in flux_step_error_rows(device, tiny=args.tiny, size=size):
            print(f"  {name}: {check}")

    if "qwen" in only:
        from bench.gpu_qwen import QWEN_HEADERS, qwen_rows

        rows = qwen_rows(device, repeats=args.repeats, tiny=args.tiny, image_size=112 if args.tiny else 1024)
        print_table(QWEN_HEADERS, [[r[0], r[1], r[2], "n/a" if r[3] is None else r[3], f"{r[4]:.2f}x"] for r in rows],
                    title="Qwen2-VL-7B, random weights (speed-up: plain s / our s)")

    if "product" in only:
        rows = product_rows(device, args.tiny, args.repeats, args.birefnet_dir, 16 if args.tiny else args.qwen_tokens)
        print_table(["one product (1024 px sample)", "first call s", "resident s", "note"], rows,
                    title="One product through every stage with the models resident (bar: GPU stages <= 6 s)")

    if "first-image" in only:
        rows = first_image_rows(args.tiny, 2 if args.tiny else args.steps)
        print_table(["FLUX fast path, first image in a new process", "wall s", "in process s", "build s", "applied"],
                    rows, title="First image including the model build (bar: <= 60 s with a warm compile cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
