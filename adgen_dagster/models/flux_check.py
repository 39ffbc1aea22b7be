"""The numerical check (`transformer_step_error`, `vae_decode_error`) runs one module on
the same random inputs before and after the fast path and reports ||fast - plain|| /
||plain||. Bounds, per transformer call (one denoising step):

- float32, fused QKV / channels-last (same arithmetic, other summation order): 1e-5
  (`REL_ERR_EXACT`); compiled in float32: 1e-4 (`REL_ERR_COMPILED_FP32`).
- bfloat16, fused QKV / compile: 0.02 (`REL_ERR_BF16`): bf16 keeps 8 bits of mantissa
  (0.4% per rounding), and a different kernel choice changes the rounding of a few
  elements per layer.
- fp8 (e4m3, row-wise dynamic scales on activations and weights): 0.10 (`REL_ERR_FP8`).
  Three mantissa bits give about 2.6% rms rounding error per operand, about 3.7% per
  product and so per linear output; the residual stream carries most of the signal
  past each block, which keeps the whole step near one layer's error. Emulated on the
  CPU (row-wise e4m3 quantize-dequantize around every linear layer of a random
  FLUX-shaped transformer, 128-dim heads): 5.1% with 3+6 blocks, 5.3% with 8+16, so
  about 5-6% is expected at FLUX.1-dev's 19+38; 0.10 leaves room for fp8 kernels'
  fast accumulation. Above it the fp8 path is not the same function and must not be used.
"""

from __future__ import annotations

from dataclasses import dataclass

from adgen_dagster.models.flux_fast_path import apply_fast_path_to
from adgen_dagster.models.params import FluxParams


REL_ERR_EXACT = 1e-5
REL_ERR_COMPILED_FP32 = 1e-4
REL_ERR_BF16 = 0.02
REL_ERR_FP8 = 0.10


@dataclass
class StepCheck:
    """Relative error of the fast path against the plain module on the same inputs."""

    rel_err: list[float]
    applied: list[str]
    fallbacks: dict[str, str]
    bound: float

    @property
    def max_rel_err(self) -> float:
        return max(self.rel_err) if self.rel_err else 0.0

    @property
    def ok(self) -> bool:
        return self.max_rel_err <= self.bound

    def __str__(self) -> str:
        errs = ", ".join(f"{e:.2e}" for e in self.rel_err)
        return (f"rel err [{errs}] (max {self.max_rel_err:.2e}, bound {self.bound:g}: {'ok' if self.ok else 'FAIL'}); "
                f"applied: {', '.join(self.applied) or 'none'}"
                + (f"; fell back: {self.fallbacks}" if self.fallbacks else ""))


def rel_err(fast, plain) -> float:
    """||fast - plain|| / ||plain|| in float64."""
    a, b = fast.double(), plain.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def error_bound(applied: list[str], dtype) -> float:
    import torch

    if any(a.startswith("fp8") for a in applied):
        return REL_ERR_FP8
    if dtype == torch.float32:
        return REL_ERR_COMPILED_FP32 if "compile" in applied else REL_ERR_EXACT
    return REL_ERR_BF16


def transformer_inputs(config, *, height: int = 1024, width: int = 1024, text_len: int = 512, seed: int = 0,
                       device=None, dtype=None, guidance: float = 3.5) -> dict:
    """Random inputs of the right shapes for one FLUX transformer call (as the pipeline makes them)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    h, w = height // 16, width // 16  # VAE /8, then 2x2 patches packed into channels
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    inputs = {
        "hidden_states": torch.randn(1, h * w, config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, text_len, config.joint_attention_dim, generator=g) * 0.2,
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=g),
        "img_ids": ids.reshape(h * w, 3),
        "txt_ids": torch.zeros(text_len, 3),
    }
    out = {k: v.to(device=device, dtype=dtype if k not in ("img_ids", "txt_ids") else v.dtype) for k, v in inputs.items()}
    if config.guidance_embeds:
        out["guidance"] = torch.full((1,), guidance, device=device, dtype=torch.float32)
    return out


def transformer_step_error(transformer, params: FluxParams, *, height: int = 1024, width: int = 1024,
                           text_len: int = 512, timesteps: tuple[float, ...] = (1.0, 0.6, 0.2), seed: int = 0) -> StepCheck:
    """One denoising step of `transformer` eager, then with `params`' fast path: relative error per timestep.

    Applies the fast path to `transformer` in place (the first-block cache is left out: it
    skips work by design and is checked on final images). Compile and fp8 run only on a
    CUDA GPU; elsewhere they fall back and the check covers what was applied.
    """
    import torch

    first = next(transformer.parameters())
    device, dtype = first.device, first.dtype
    inputs = transformer_inputs(transformer.config, height=height, width=width, text_len=text_len, seed=seed,
                                device=device, dtype=dtype)

    def run() -> list:
        outs = []
        with torch.inference_mode():
            for t in timesteps:
                ts = torch.full((1,), t, device=device, dtype=dtype)
                outs.append(transformer(**inputs, timestep=ts, return_dict=False)[0].float().cpu())
        return outs

    plain = run()
    fast = apply_fast_path_to(transformer=transformer, params=params.model_copy(update={"first_block_cache": 0.0}),
                              device=device, dtype=dtype)
    got = run()
    return StepCheck([rel_err(a, b) for a, b in zip(got, plain)], fast.applied, fast.fallbacks,
                     error_bound(fast.applied, dtype))


def vae_decode_error(vae, params: FluxParams, *, height: int = 1024, width: int = 1024, seed: int = 0) -> StepCheck:
    """The VAE's decode of random latents eager, then with `params`' fast path (fused QKV, channels-last, compile)."""
    import torch

    first = next(vae.parameters())
    device, dtype = first.device, first.dtype
    g = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(1, vae.config.latent_channels, height // 8, width // 8, generator=g).to(device, dtype)
    with torch.inference_mode():
        plain = vae.decode(z, return_dict=False)[0].float().cpu()
    only_vae = params.model_copy(update={"fp8": False, "first_block_cache": 0.0})
    fast = apply_fast_path_to(vae=vae, params=only_vae, device=device, dtype=dtype)
    with torch.inference_mode():
        got = vae.decode(z.contiguous(memory_format=torch.channels_last) if params.channels_last_vae else z,
                         return_dict=False)[0].float().cpu()
    return StepCheck([rel_err(got, plain)], fast.applied, fast.fallbacks, error_bound(fast.applied, dtype))
