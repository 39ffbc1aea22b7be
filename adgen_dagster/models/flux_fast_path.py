"""The fast path (`apply_fast_path`): each piece is its own setting and falls back with a
logged reason where it cannot run. Order: fused QKV projections (transformer and VAE),
channels-last VAE, fp8 dynamic quantization of the transformer's linear layers (torchao,
row-wise scales, compute capability 8.9+ with bfloat16 weights), first-block cache
(diffusers hooks, off by default), then torch.compile of the transformer (its repeated
blocks, or the whole model) and the VAE decoder, with inductor's caches in a persistent
folder and a mega-cache file (`torch.compiler.save_cache_artifacts`) so only the first
run on a machine pays for compiling. A compile that fails at its first call is undone
and the call runs eager.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from adgen_dagster.models.errors import import_torch
from adgen_dagster.models.params import FluxParams

log = logging.getLogger("adgen_dagster.models")


@dataclass
class FastPath:
    """What `apply_fast_path` did: the pieces applied, those that fell back and why."""

    applied: list[str] = field(default_factory=list)
    fallbacks: dict[str, str] = field(default_factory=dict)
    compiled: list[Any] = field(default_factory=list)  # modules whose forward is compiled
    cache_dir: str = ""
    megacache: str = ""  # mega-cache file written after the first compiled call
    calls: int = 0  # successful calls through the pipeline since loading
    step_cache: bool = False  # a diffusers step cache (first-block cache) is on the transformer

    def fell_back(self, piece: str, reason: str) -> None:
        self.fallbacks[piece] = reason
        log.info("flux fast path: %s not used: %s", piece, reason)

    def summary(self) -> dict:
        md = {"fast_path": ", ".join(self.applied) or "off"}
        if self.fallbacks:
            md["fast_path_fallbacks"] = "; ".join(f"{k}: {v}" for k, v in self.fallbacks.items())
        return md

    def uncompile(self, reason: str) -> None:
        """Run the compiled modules eager again (after a compile failure at the first call)."""
        for module in self.compiled:
            module._compiled_call_impl = None
        self.compiled.clear()
        if "compile" in self.applied:
            self.applied.remove("compile")
        self.fell_back("compile", reason)

    def save_compile_cache(self) -> None:
        """After the first compiled call: write the mega-cache (graphs, kernels, autotuning) once."""
        if not self.compiled or not self.megacache or Path(self.megacache).exists():
            return
        import torch

        save = getattr(torch.compiler, "save_cache_artifacts", None)
        if save is None:
            return
        try:
            got = save()
            if got:
                tmp = Path(self.megacache + f".{os.getpid()}.tmp")
                tmp.write_bytes(got[0])
                os.replace(tmp, self.megacache)
                log.info("flux: compile cache saved to %s (%.1f MB)", self.megacache, len(got[0]) / 1e6)
        except Exception as exc:  # the in-folder caches still work
            log.info("flux: could not save the compile mega-cache: %s", exc)


def fast_path_key(params: FluxParams) -> str:
    """The fast-path settings, for the loaded model's key (another combination is another model)."""
    return (f"fuse_qkv={int(params.fuse_qkv)},channels_last_vae={int(params.channels_last_vae)},"
            f"fp8={int(params.fp8)},fbc={params.first_block_cache:g},"
            f"compile={params.compile_mode + ('/blocks' if params.compile_regional else '/whole') if params.compile else 0}")


def compile_cache_dir(params: FluxParams) -> Path:
    return Path(params.compile_cache_dir or os.environ.get("TORCHINDUCTOR_CACHE_DIR")
                or "~/.cache/adgen/inductor").expanduser()


def configure_compile_cache(params: FluxParams) -> Path:
    """Point inductor's caches (graphs, autotuning, triton kernels) at one persistent folder."""
    import torch._inductor.config as inductor

    folder = compile_cache_dir(params)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ.setdefault("TRITON_CACHE_DIR", str(folder / "triton"))
    inductor.fx_graph_cache = True
    if hasattr(inductor, "autotune_local_cache"):
        inductor.autotune_local_cache = True
    try:
        import torch._functorch.config as functorch

        if hasattr(functorch, "enable_autograd_cache"):
            functorch.enable_autograd_cache = True
    except ImportError:  # pragma: no cover - older torch
        pass
    return folder


def compile_unsupported(device) -> Optional[str]:
    """Why torch.compile is not used on `device`, or None."""
    import torch

    if device.type != "cuda":
        return f"needs a CUDA GPU (device is {device.type}: compiling takes longer than it saves there)"
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this Python/torch"
    try:
        from torch.utils._triton import has_triton
    except ImportError:  # pragma: no cover
        return "triton is not available"
    if not has_triton():
        return "triton is not installed (it comes with the CUDA build of torch)"
    return None


def _torchao_fp8():
    """(quantize_, config) for fp8 row-wise dynamic quantization with the installed torchao; raises ImportError."""
    from torchao.quantization import quantize_

    try:
        from torchao.quantization import PerRow
    except ImportError:
        from torchao.quantization.granularity import PerRow
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig

        return quantize_, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    except ImportError:  # torchao < 0.9
        from torchao.quantization import float8_dynamic_activation_float8_weight

        return quantize_, float8_dynamic_activation_float8_weight(granularity=PerRow())


def fp8_unsupported(device, dtype) -> Optional[str]:
    """Why fp8 is not used, or None."""
    import torch

    if device.type != "cuda":
        return f"needs a CUDA GPU with fp8 (device is {device.type})"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"GPU compute capability {major}.{minor} has no fp8 matmul (needs 8.9+: Ada, Hopper or newer)"
    if dtype != torch.bfloat16:
        return f"needs bfloat16 weights (dtype is {str(dtype).replace('torch.', '')}; ADGEN_GPU__DTYPE)"
    try:
        _torchao_fp8()
    except ImportError as exc:
        return f"torchao is not installed or too old (pip install torchao): {exc}"
    return None


def _drop_unfused(transformer) -> None:
    """After fusing: free the separate Q, K, V weights nothing calls any more (about 4 GB for FLUX.1-dev)."""
    for module in list(transformer.modules()):
        if not getattr(module, "fused_projections", False):
            continue
        groups = []
        if hasattr(module, "to_qkv"):
            groups.append(("to_q", "to_k", "to_v"))
        if hasattr(module, "to_added_qkv"):
            groups.append(("add_q_proj", "add_k_proj", "add_v_proj"))
        for names in groups:
            for name in names:
                if name in module._modules:
                    del module._modules[name]


def apply_fast_path_to(transformer=None, vae=None, params: FluxParams = FluxParams(), device=None,
                       dtype=None) -> FastPath:
    """Apply the fast-path pieces `params` turns on to `transformer` and/or `vae`, in place."""
    torch = import_torch("flux", "ADGEN_BACKGROUND")
    probe = transformer if transformer is not None else vae
    if probe is None:
        return FastPath()
    first = next(probe.parameters())
    device = torch.device(device) if device is not None else first.device
    dtype = dtype or first.dtype
    fast = FastPath()

    if params.fuse_qkv:
        done = []
        try:
            if transformer is not None:
                transformer.fuse_qkv_projections()
                _drop_unfused(transformer)
                done.append("transformer")
            if vae is not None and hasattr(vae, "fuse_qkv_projections"):
                vae.fuse_qkv_projections()
                done.append("vae")
            fast.applied.append("fuse_qkv")
        except Exception as exc:
            fast.fell_back("fuse_qkv", f"{type(exc).__name__}: {exc} (fused: {', '.join(done) or 'none'})")
            if done:
                fast.applied.append("fuse_qkv(" + ", ".join(done) + ")")

    if params.channels_last_vae and vae is not None:
        vae.to(memory_format=torch.channels_last)
        fast.applied.append("channels_last_vae")

    if params.fp8 and transformer is not None:
        why = fp8_unsupported(device, dtype)
        if why:
            fast.fell_back("fp8", why)
        else:
            quantize_, config = _torchao_fp8()

            def linear_ok(module, fqn: str) -> bool:  # fp8 matmuls want dimensions divisible by 16
                return (isinstance(module, torch.nn.Linear) and module.in_features % 16 == 0
                        and module.out_features % 16 == 0)

            try:
                quantize_(transformer, config, filter_fn=linear_ok)
                fast.applied.append("fp8")
            except Exception as exc:
                fast.fell_back("fp8", f"torchao quantize_ failed: {type(exc).__name__}: {exc}")

    if params.first_block_cache > 0 and transformer is not None:
        try:
            from diffusers.hooks import FirstBlockCacheConfig

            transformer.enable_cache(FirstBlockCacheConfig(threshold=params.first_block_cache))
            fast.applied.append(f"first_block_cache({params.first_block_cache:g})")
            fast.step_cache = True
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            fast.fell_back("first_block_cache", f"diffusers has no usable first-block cache here: {exc}")

    if params.compile:
        why = compile_unsupported(device)
        if why:
            fast.fell_back("compile", why)
        else:
            _compile(transformer, vae, params, device, dtype, fast)
    return fast


def _compile(transformer, vae, params: FluxParams, device, dtype, fast: FastPath) -> None:
    import torch

    folder = configure_compile_cache(params)
    fast.cache_dir = str(folder)
    # hooks that branch on data (the first-block cache) cannot be one graph
    fullgraph = params.first_block_cache <= 0
    opts = {"mode": params.compile_mode, "fullgraph": fullgraph}
    mega = _megacache_file(folder, transformer, vae, params, device, dtype)
    load = getattr(torch.compiler, "load_cache_artifacts", None)
    if mega.is_file() and load is not None:
        try:
            load(mega.read_bytes())
            log.info("flux: compile cache loaded from %s", mega)
        except Exception as exc:
            log.info("flux: compile mega-cache %s not usable (%s); compiling", mega, exc)
    fast.megacache = str(mega)
    what = []
    try:
        if transformer is not None:
            if params.compile_regional and getattr(transformer, "_repeated_blocks", None):
                transformer.compile_repeated_blocks(**opts)
                blocks = [m for m in transformer.modules() if type(m).__name__ in transformer._repeated_blocks]
                fast.compiled.extend(blocks)
                what.append(f"transformer blocks x{len(blocks)}")
            else:
                transformer.compile(**opts)
                fast.compiled.append(transformer)
                what.append("transformer")
        if vae is not None:
            vae.decoder.compile(mode=params.compile_mode, fullgraph=True)
            fast.compiled.append(vae.decoder)
            what.append("vae decoder")
    except Exception as exc:
        fast.uncompile(f"torch.compile failed: {type(exc).__name__}: {exc}")
        return
    fast.applied.append("compile")
    log.info("flux: compiling %s (mode %s%s) with caches in %s; the first call pays for it",
             ", ".join(what), params.compile_mode, ", fullgraph" if fullgraph else "", folder)


def _megacache_file(folder: Path, transformer, vae, params: FluxParams, device, dtype) -> Path:
    import torch

    doc = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "dtype": str(dtype),
        "transformer": dict(transformer.config) if transformer is not None else None,
        "vae": dict(vae.config) if vae is not None else None,
        "fast": fast_path_key(params),
        "size": [params.width, params.height],
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return folder / f"flux-megacache-{digest}.bin"


def apply_fast_path(pipe, params: FluxParams, device=None, dtype=None) -> FastPath:
    """The fast path on a loaded FLUX pipeline (its transformer and VAE, shared with `from_pipe` copies)."""
    return apply_fast_path_to(pipe.transformer, pipe.vae, params, device, dtype)


def is_compile_error(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        if cls.__module__.startswith(("torch._dynamo", "torch._inductor", "triton")):
            return True
    return False
