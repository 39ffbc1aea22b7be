"""Does the FLUX fast path draw the same pictures? Plain vs fast on real weights: PSNR and SSIM.

    python scripts/compare_flux_images.py --model /models/FLUX.1-dev            # the full fast path
    python scripts/compare_flux_images.py --model black-forest-labs/FLUX.1-dev --fbc 0.05 --out /tmp/cmp
    python scripts/compare_flux_images.py --model ... --only fuse_qkv,compile   # some pieces

Needs the weights (a local folder or a Hugging Face cache snapshot; nothing is
downloaded) and, for compile and fp8, a CUDA GPU. For each prompt and seed it generates
an image with the plain pipeline, then applies the fast path to the same loaded
pipeline (in place: one copy of the weights), checks one transformer step and the VAE
decode numerically (relative error, see `adgen_dagster.models.flux` for the bounds),
generates the same prompts and seeds again and prints PSNR (dB) and SSIM per image.
Same function: PSNR well above 30 dB and SSIM above 0.95 for bf16 pieces; fp8 and the
first-block cache change pixels more and are judged by eye on the saved pairs.

SSIM is the standard one (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03) on the luma channel, written here with OpenCV's Gaussian blur.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROMPTS = [
    "professional product photography backdrop for a ceramic mug, warm beige, empty seamless studio scene with soft "
    "diffused light and a gentle floor, clean, high detail, no product, no text",
    "professional product photography backdrop for running shoes, cool blue gradient, empty studio scene, soft light, "
    "no product, no text",
]


def _as_float(img) -> np.ndarray:
    a = np.asarray(img)
    return a.astype(np.float64)


def psnr(a, b, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    x, y = _as_float(a), _as_float(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _luma(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] >= 3:
        return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    return a if a.ndim == 2 else a[..., 0]


def ssim(a, b, peak: float = 255.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of the luma channels (1.0 for identical images)."""
    x, y = _luma(_as_float(a)), _luma(_as_float(b))
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.shape} vs {y.shape}")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), sigma, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="black-forest-labs/FLUX.1-dev", help="local folder or hub id in the local cache")
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    ap.add_argument("--only", default="", help="fast-path pieces to apply (fuse_qkv,channels_last_vae,compile,fp8); "
                    "default: the full fast path")
    ap.add_argument("--fbc", type=float, default=0.0, help="also apply the first-block cache with this threshold")
    ap.add_argument("--out", default="", help="folder to save the plain/fast image pairs")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)

    import torch
    from diffusers import FluxPipeline

    from adgen_dagster.models.flux import _dtype_kwargs
    from adgen_dagster.models.flux_check import transformer_step_error, vae_decode_error
    from adgen_dagster.models.flux_fast_path import apply_fast_path_to
    from adgen_dagster.models.params import FluxParams
    from adgen_dagster.models.weights import locate

    device = torch.device(args.device if torch.cuda.is_available() or args.device == "cpu" else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    path = locate(args.model, "--model", "model_index.json")
    pieces = {p.strip() for p in args.only.split(",") if p.strip()}
    known = {"fuse_qkv", "channels_last_vae", "compile", "fp8"}
    if pieces - known:
        ap.error(f"unknown pieces {sorted(pieces - known)}; choose from {sorted(known)}")
    plain = FluxParams(model=str(path), fuse_qkv=False, channels_last_vae=False, compile=False, fp8=False,
                       width=args.size, height=args.size, steps=args.steps)
    fast = plain.fast() if not pieces else plain.model_copy(update={p: True for p in pieces})
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    print(f"loading {path} on {device} ({str(dtype).replace('torch.', '')})")
    pipe = FluxPipeline.from_pretrained(str(path), local_files_only=True, **_dtype_kwargs(dtype)).to(device)
    pipe.set_progress_bar_config(disable=True)

    def generate(prompt: str, seed: int):
        t0 = time.perf_counter()
        with torch.inference_mode():
            img = pipe(prompt, height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=3.5,
                       generator=torch.Generator(device="cpu").manual_seed(seed)).images[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return img.convert("RGB"), time.perf_counter() - t0

    before = {}
    for i, prompt in enumerate(PROMPTS):
        for seed in seeds:
            before[i, seed], dt = generate(prompt, seed)
            print(f"plain  prompt {i} seed {seed}: {dt:.1f} s")

    print("fast path:", ", ".join(f"{k}={getattr(fast, k)}" for k in sorted(known)), f"first_block_cache={args.fbc:g}")
    check_t = transformer_step_error(pipe.transformer, fast, height=args.size, width=args.size)
    check_v = vae_decode_error(pipe.vae, fast, height=args.size, width=args.size)
    print(f"transformer step: {check_t}\nvae decode: {check_v}")
    if args.fbc > 0:
        only_fbc = FluxParams(fuse_qkv=False, channels_last_vae=False, compile=False, fp8=False,
                              first_block_cache=args.fbc)
        print("first-block cache:", apply_fast_path_to(transformer=pipe.transformer, params=only_fbc).summary())

    print(f"\n{'prompt':>6} {'seed':>5} {'PSNR dB':>8} {'SSIM':>7} {'fast s':>7}")
    worst = math.inf
    for (i, seed), ref in before.items():
        got, dt = generate(PROMPTS[i], seed)
        p, s = psnr(got, ref), ssim(got, ref)
        worst = min(worst, s)
        print(f"{i:>6} {seed:>5} {p:>8.2f} {s:>7.4f} {dt:>7.1f}")
        if out:
            ref.save(out / f"p{i}_s{seed}_plain.png")
            got.save(out / f"p{i}_s{seed}_fast.png")
    ok = check_t.ok and check_v.ok
    print(f"\nstep check {'ok' if ok else 'OUT OF BOUND'}; worst SSIM {worst:.4f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
