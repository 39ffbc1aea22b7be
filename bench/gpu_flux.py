"""FLUX.1-dev at full size with random weights: plain diffusers, the reference configuration, our fast path.

`bench/gpu.py` calls `flux_rows()` (and `flux_step_error_rows()`); this file also runs
alone:

    python bench/gpu_flux.py                      # H100: 1024x1024, 50 steps, bf16
    python bench/gpu_flux.py --steps 28 --repeats 1
    python bench/gpu_flux.py --tiny               # CPU smoke test: tiny config, 64 px, 2 steps

The transformer (FLUX.1-dev's config: 19 double + 38 single blocks, 24 heads x 128) and
the VAE (FLUX's 16-channel autoencoder) are built from configs straight on the device in
bfloat16 with random weights, so no weights are needed and the CPU never holds a
float32 copy. The text encoders are skipped: `prompt_embeds` (512 x 4096, T5) and
`pooled_prompt_embeds` (768, CLIP) of the right shapes go in instead, so every row times
the same work: 50 transformer steps and the VAE decode.

Each row is a fresh pipeline in the same process: plain diffusers `FluxPipeline`; the
reference configuration (`enable_model_cpu_offload`, as the reference system ran it on a
24 GB card); each optimisation added alone to the plain pipeline; the full fast path
(`FluxParams.fast()`, the code the `flux` backend runs). The first call is timed on its
own (it pays for compiling and warm-up); seconds per image is the mean of the calls
after it; peak memory is `torch.cuda.max_memory_allocated` over the row.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adgen_dagster.models.params import FluxParams  # noqa: E402

# black-forest-labs/FLUX.1-dev transformer/config.json and vae/config.json
FLUX_DEV_TRANSFORMER = dict(
    patch_size=1, in_channels=64, out_channels=None, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    act_fn="silu", latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611,
    shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True,
)
FLUX_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                      base_image_seq_len=256, max_image_seq_len=4096)
FLUX_TEXT_LEN = 512  # T5 tokens FLUX.1-dev is run with

# the same wiring at toy size (for the CPU smoke test)
TINY_TRANSFORMER = dict(
    patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6),
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
    latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=1.5035, shift_factor=0.0609,
    use_quant_conv=False, use_post_quant_conv=False,
)
TINY_TEXT_LEN = 16

PLAIN = FluxParams(fuse_qkv=False, channels_last_vae=False, compile=False, fp8=False, first_block_cache=0.0)
FBC_THRESHOLD = 0.05

# (row name, what to do): FluxParams for our fast-path code, or "offload" for the reference configuration
CONFIGS: list[tuple[str, object]] = [
    ("plain diffusers", PLAIN),
    ("reference (model CPU offload)", "offload"),
    ("+ fuse_qkv", PLAIN.model_copy(update={"fuse_qkv": True})),
    ("+ channels_last_vae", PLAIN.model_copy(update={"channels_last_vae": True})),
    ("+ compile", PLAIN.model_copy(update={"compile": True})),
    ("+ fp8", PLAIN.model_copy(update={"fp8": True})),
    (f"+ first-block cache ({FBC_THRESHOLD:g})", PLAIN.model_copy(update={"first_block_cache": FBC_THRESHOLD})),
    ("full fast path", PLAIN.fast()),
]


class FluxRow(NamedTuple):
    name: str
    first_s: float  # the first call: compile and warm-up included
    s_per_image: float  # mean of the calls after the first
    peak_gb: Optional[float]  # torch.cuda.max_memory_allocated over the row (None on the CPU)
    ratio: float  # s_per_image / the plain row's
    note: str = ""  # fast-path pieces that fell back, or why the row differs


def _torch():
    import torch

    return torch


def _build(cls, config: dict, device, dtype):
    """`cls(**config)` with its parameters created on `device` in `dtype` (no float32 or CPU copy)."""
    torch = _torch()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = cls(**config)
    finally:
        torch.set_default_dtype(previous)
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build_full_flux(device, dtype=None, *, tiny: bool = False, seed: int = 0):
    """(transformer, vae) of FLUX.1-dev's architecture with random weights, built on `device` in `dtype` (bf16)."""
    torch = _torch()
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    torch.manual_seed(seed)
    transformer = _build(FluxTransformer2DModel, TINY_TRANSFORMER if tiny else FLUX_DEV_TRANSFORMER, device, dtype)
    vae = _build(AutoencoderKL, TINY_VAE if tiny else FLUX_VAE, device, dtype)
    return transformer, vae


def build_pipeline(device, dtype=None, *, tiny: bool = False, seed: int = 0):
    """A `FluxPipeline` with no text encoders (prompt embeddings go in directly)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    transformer, vae = build_full_flux(device, dtype, tiny=tiny, seed=seed)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=vae, text_encoder=None,
                        tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_embeds(transformer, device, dtype, text_len: int, seed: int = 0):
    """Random (prompt_embeds, pooled_prompt_embeds) of the shapes T5 and CLIP give FLUX."""
    torch = _torch()
    g = torch.Generator(device="cpu").manual_seed(seed)
    cfg = transformer.config
    embeds = (torch.randn(1, text_len, cfg.joint_attention_dim, generator=g) * 0.2).to(device, dtype)
    pooled = torch.randn(1, cfg.pooled_projection_dim, generator=g).to(device, dtype)
    return embeds, pooled


def _sync(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device) -> None:
    if device.type != "cuda":
        return  # nothing big to give back (and a full collection costs a third of a second per row)
    torch = _torch()
    gc.collect()
    torch.cuda.empty_cache()
    if "torch._dynamo" in sys.modules:  # compiled code of the freed modules
        try:
            sys.modules["torch._dynamo"].reset()
        except Exception:  # pragma: no cover
            pass


def _run_row(name: str, what, device, dtype, *, steps: int, size: int, repeats: int, tiny: bool) -> FluxRow:
    torch = _torch()
    from adgen_dagster.models.flux_fast_path import apply_fast_path

    note = ""
    pipe = build_pipeline(device, dtype, tiny=tiny)
    text_len = TINY_TEXT_LEN if tiny else FLUX_TEXT_LEN
    embeds, pooled = prompt_embeds(pipe.transformer, device, dtype, text_len)
    if what == "offload":
        if device.type == "cuda":
            pipe.enable_model_cpu_offload(device=device)
            note = "text encoders not loaded (the reference also offloaded T5 and CLIP)"
        else:
            note = "on the CPU offloading is a no-op: same as plain"
    else:
        fast = apply_fast_path(pipe, what, device, dtype)
        if fast.fallbacks:
            note = "fell back: " + "; ".join(f"{k}: {v}" for k, v in fast.fallbacks.items())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def call(seed: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=size, width=size,
                 num_inference_steps=steps, guidance_scale=3.5, max_sequence_length=text_len,
                 generator=torch.Generator(device="cpu").manual_seed(seed), output_type="pil")
        _sync(device)
        return time.perf_counter() - t0

    first = call(0)
    times = [call(1 + i) for i in range(max(1, repeats))]
    peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None
    pipe = embeds = pooled = None  # the caller frees the row's model before the next is built
    return FluxRow(name, first, sum(times) / len(times), peak, 0.0, note)


def flux_rows(device="cuda", steps: int = 50, size: int = 1024, repeats: int = 2, *, tiny: bool = False,
              configs: Optional[list[tuple[str, object]]] = None, dtype=None, log=print) -> list[FluxRow]:
    """One row per configuration (see `CONFIGS`), all in this process; `ratio` is against the first row.

    `tiny=True` runs the toy config at 64 px and 2 steps (CPU smoke test); `size` and
    `steps` are then ignored.
    """
    torch = _torch()
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if tiny:
        size, steps = 64, 2
    rows: list[FluxRow] = []
    for name, what in configs or CONFIGS:
        try:
            row = _run_row(name, what, device, dtype, steps=steps, size=size, repeats=repeats, tiny=tiny)
        except Exception as exc:  # one broken configuration (an OOM, say) must not lose the others' numbers
            row = FluxRow(name, math.nan, math.nan, None, math.nan, f"failed: {type(exc).__name__}: {exc}"[:300])
        _free(device)  # outside the except block: the traceback no longer holds the failed row's pipeline
        rows.append(row)
        if log:
            log(f"  {row.name}: first {row.first_s:.2f} s, {row.s_per_image:.2f} s/image"
                + (f", peak {row.peak_gb:.1f} GB" if row.peak_gb is not None else "") + (f"  [{row.note}]" if row.note else ""))
    base = rows[0].s_per_image if rows else math.nan
    return [r._replace(ratio=r.s_per_image / base if base and not math.isnan(base) else math.nan) for r in rows]


def flux_step_error_rows(device="cuda", *, tiny: bool = False, dtype=None, size: int = 1024) -> list[tuple[str, object]]:
    """The numerical check: one transformer step (and the VAE decode) plain vs each fast-path variant.

    Returns [(name, StepCheck)]; each check builds a fresh random model (same seed), so
    the plain reference is the bf16 eager module itself.
    """
    torch = _torch()
    from adgen_dagster.models.flux_check import transformer_step_error, vae_decode_error

    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    size = 64 if tiny else size
    text_len = TINY_TEXT_LEN if tiny else FLUX_TEXT_LEN
    out = []
    variants = [("fuse_qkv", PLAIN.model_copy(update={"fuse_qkv": True})),
                ("compile", PLAIN.model_copy(update={"compile": True})),
                ("fp8", PLAIN.model_copy(update={"fp8": True})),
                ("full fast path", PLAIN.fast())]
    for name, params in variants:
        transformer, vae = build_full_flux(device, dtype, tiny=tiny)
        del vae
        out.append((f"transformer step, {name}", transformer_step_error(
            transformer, params, height=size, width=size, text_len=text_len)))
        del transformer
        _free(device)
    _, vae = build_full_flux(device, dtype, tiny=tiny)
    out.append(("vae decode, fuse_qkv + channels_last + compile",
                vae_decode_error(vae, PLAIN.model_copy(update={"fuse_qkv": True, "channels_last_vae": True,
                                                               "compile": True}), height=size, width=size)))
    del vae
    _free(device)
    return out


def print_rows(rows: list[FluxRow], title: str = "") -> None:
    from bench._util import print_table

    def num(v, fmt="{:.2f}"):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    print_table(["configuration", "first call s", "s / image", "peak GB", "vs plain", "note"],
                [[r.name, num(r.first_s), num(r.s_per_image), num(r.peak_gb, "{:.1f}"), num(r.ratio, "{:.2f}x"),
                  r.note[:90]] for r in rows], title=title or None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="toy config at 64 px, 2 steps (runs on the CPU)")
    ap.add_argument("--no-check", action="store_true", help="skip the numerical check")
    args = ap.parse_args(argv)
    torch = _torch()
    device = "cpu" if args.tiny and not torch.cuda.is_available() else args.device
    size, steps = (64, 2) if args.tiny else (args.size, args.steps)
    print(f"FLUX.1-dev{' (tiny)' if args.tiny else ''}, random weights, {size}x{size}, {steps} steps, on "
          f"{torch.cuda.get_device_name() if device.startswith('cuda') else device}")
    rows = flux_rows(device, steps=args.steps, size=args.size, repeats=args.repeats, tiny=args.tiny)
    print_rows(rows, f"FLUX {size}x{size}, {steps} steps")
    if not args.no_check:
        print("\nNumerical check (relative error of one step vs the eager model on the same inputs):")
        for name, check in flux_step_error_rows(device, tiny=args.tiny, size=args.size):
            print(f"  {name}: {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
