"""The `flux` background: FLUX.1 (diffusers) from text, or from the studio sweep (img2img).

`FluxBackground(params, host)` has the background stage's signature
`(details, product_colours, backdrop_params, seed=...) -> PIL.Image`. It loads nothing
until its first call (a cached product never loads a model); then the pipeline is loaded
once per process through the `ModelHost` (GPU lock, memory budget, OOM -> `ModelError`),
and `FluxImg2ImgPipeline.from_pipe` shares its components for img2img.

What goes in:
- the prompt, from the product's details (`build_prompt`: name or headline, category,
  style, filled into the `prompt` template; markup and control characters removed,
  length bounded);
- in img2img mode, the classical studio sweep at the generation size as the starting
  image, so FLUX keeps its palette and layout and `strength` says how far to move;
- a seed per product through a CPU `torch.Generator`: the same seed gives the same image
  on any device;
- a negative prompt through true CFG only when `true_cfg_scale > 1` and the pipeline
  takes one (it doubles the work per step).

The fast path (`apply_fast_path`): each piece is its own setting and falls back with a
logged reason where it cannot run. Order: fused QKV projections (transformer and VAE),
channels-last VAE, fp8 dynamic quantization of the transformer's linear layers (torchao,
row-wise scales, compute capability 8.9+ with bfloat16 weights), first-block cache
(diffusers hooks, off by default), then torch.compile of the transformer (its repeated
blocks, or the whole model) and the VAE decoder, with inductor's caches in a persistent
folder and a mega-cache file (`torch.compiler.save_cache_artifacts`) so only the first
run on a machine pays for compiling. A compile that fails at its first call is undone
and the call runs eager.

The numerical check (`transformer_step_error`, `vae_decode_error`) runs one module on
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

import hashlib
import inspect
import json
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional

from PIL import Image, ImageOps

from adgen_dagster.imaging.backdrop import BackdropParams, render_studio
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.imaging.text_clean import clean_text
from adgen_dagster.models.params import DEFAULT_BACKGROUND_PROMPT, DEFAULT_NEGATIVE_PROMPT, FluxParams
from adgen_dagster.models.weights import locate, weights_bytes
from adgen_dagster.models.errors import ModelError, import_torch, is_oom
from adgen_dagster.models.host import ModelHost

log = logging.getLogger("adgen_dagster.models")

SETTING = "ADGEN_FLUX__MODEL"
MAX_SUBJECT_CHARS = 120
MAX_STYLE_CHARS = 200
MAX_PROMPT_CHARS = 1000

REL_ERR_EXACT = 1e-5
REL_ERR_COMPILED_FP32 = 1e-4
REL_ERR_BF16 = 0.02
REL_ERR_FP8 = 0.10


# --- the prompt ---------------------------------------------------------------------------

_TAG = re.compile(r"<[^<>]{0,200}>")


def prompt_text(text: str, limit: int) -> str:
    """`text` fit for a prompt: markup and control characters removed, spaces collapsed, at most `limit` chars.

    Any script is kept (Korean, accents); what is cut is cut at a word boundary when one is near.
    """
    text = unicodedata.normalize("NFC", str(text or ""))  # first: NFC may compose "<" with a combining mark
    text = _TAG.sub(" ", text).replace("<", " ").replace(">", " ").replace("{", "(").replace("}", ")")
    text = clean_text(text, keep_newlines=False, drop="C").strip(" ,;")
    if len(text) > limit:
        cut = text[:limit]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,;")
    return text


def build_prompt(details: ProductDetails, template: str = DEFAULT_BACKGROUND_PROMPT) -> str:
    """The FLUX prompt for one product: `template` with {subject} and {style} filled from its details."""
    subject = prompt_text(details.name or details.headline, MAX_SUBJECT_CHARS) or "a product"
    category = prompt_text(getattr(details, "category", "") or "", 60)
    if category and category.lower() not in subject.lower():
        subject = f"{subject} ({category})"
    style = prompt_text(details.style, MAX_STYLE_CHARS) or "neutral soft tones"
    values = {"subject": subject, "style": style}
    prompt = re.sub(r"\{(subject|style)\}", lambda m: values[m.group(1)], template or DEFAULT_BACKGROUND_PROMPT)
    return prompt_text(prompt, MAX_PROMPT_CHARS)


# --- the fast path ------------------------------------------------------------------------


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


def _is_compile_error(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        if cls.__module__.startswith(("torch._dynamo", "torch._inductor", "triton")):
            return True
    return False


# --- the backend --------------------------------------------------------------------------


_OPENS_CONTEXT: dict[type, bool] = {}


def opens_cache_context(pipe) -> bool:
    """Whether the pipeline wraps its transformer calls in `cache_context` (diffusers' step caches need it)."""
    cls = type(pipe)
    if cls not in _OPENS_CONTEXT:
        try:
            _OPENS_CONTEXT[cls] = "cache_context(" in inspect.getsource(cls.__call__)
        except (OSError, TypeError):
            _OPENS_CONTEXT[cls] = False
    return _OPENS_CONTEXT[cls]


class _Pipes(NamedTuple):
    txt2img: Any
    img2img: Any
    fast: FastPath


def _dtype_kwargs(dtype) -> dict:
    """`dtype=` for diffusers that know it (0.36+), `torch_dtype=` before."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:  # pragma: no cover
        return {"torch_dtype": dtype}
    return {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}


def _diffusers():
    try:
        import diffusers
    except ImportError:
        raise ModelError("the flux backend needs diffusers, which is not installed: pip install -e '.[neural]', "
                         "or set ADGEN_BACKGROUND=studio") from None
    return diffusers


def _generator(seed: int):
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))


class FluxBackground:
    """The `flux` background backend (see the module's docstring)."""

    def __init__(self, params: FluxParams, host: ModelHost):
        self.params = params
        self.host = host
        self.last_metadata: dict = {}

    def key(self, path: Path) -> str:
        return f"flux:{path}:{fast_path_key(self.params)}"

    def pipelines(self) -> tuple[_Pipes, str, bool]:
        """(the loaded pipelines, their key, whether this call loaded them)."""
        self.host.require_accelerator("flux", "ADGEN_BACKGROUND")
        path = locate(self.params.model, SETTING, "model_index.json")
        key = self.key(path)
        fresh = key not in self.host.loaded()
        pipes = self.host.model(key, lambda: self._load(path), what=f"FLUX pipeline {path}",
                                size_hint=0 if self.params.cpu_offload else weights_bytes(path))
        return pipes, key, fresh

    def _load(self, path: Path) -> _Pipes:
        import_torch("flux", "ADGEN_BACKGROUND")
        diffusers = _diffusers()
        device, dtype = self.host.device, self.host.dtype
        try:
            pipe = diffusers.FluxPipeline.from_pretrained(str(path), local_files_only=True, **_dtype_kwargs(dtype))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"{SETTING}={self.params.model!r}: cannot load a FLUX pipeline from {path} ({type(exc).__name__}: "
                f"{exc}); point {SETTING} at a complete FLUX.1 folder (model_index.json, transformer, vae, "
                f"text_encoder, text_encoder_2, tokenizers, scheduler)"
            ) from None
        offload = self.params.cpu_offload and device.type == "cuda"
        if offload:  # each model goes to the GPU only while it runs; the hooks are on the shared components
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        img2img = diffusers.FluxImg2ImgPipeline.from_pipe(pipe, **_dtype_kwargs(dtype))  # shares every component
        img2img.set_progress_bar_config(disable=True)
        fast = apply_fast_path(pipe, self.params, device, dtype)
        return _Pipes(pipe, img2img, fast)

    def __call__(self, details: ProductDetails, product_colours: list[str] | None,
                 backdrop_params: BackdropParams | None = None, seed: int = 0) -> Image.Image:
        p = self.params
        out_params = backdrop_params or BackdropParams()
        self.last_metadata = {}
        pipes, key, fresh = self.pipelines()
        prompt = build_prompt(details, p.prompt)
        pipe = pipes.img2img if p.mode == "img2img" else pipes.txt2img
        kwargs: dict[str, Any] = {
            "prompt": prompt, "height": p.height, "width": p.width, "num_inference_steps": p.steps,
            "guidance_scale": p.guidance, "max_sequence_length": p.max_sequence_length, "output_type": "pil",
        }
        md: dict[str, Any] = {"model": p.model, **self.host.describe(), "mode": p.mode, "steps": p.steps,
                              "guidance": p.guidance, "seed": int(seed), "prompt": prompt,
                              "generated_size": f"{p.width}x{p.height}"}
        md.pop("models_loaded", None)
        if p.mode == "img2img":
            start = render_studio(details, product_colours,
                                  out_params.model_copy(update={"width": p.width, "height": p.height}), seed=seed)
            kwargs.update(image=start, strength=p.strength)
            md["strength"] = p.strength
        md.update(self._true_cfg(pipe, kwargs, pipes.fast))

        progress = _Progress(p.progress_every)
        kwargs["callback_on_step_end"] = progress
        compiling = bool(pipes.fast.compiled) and pipes.fast.calls == 0
        with self.host.inference(f"FLUX {p.mode} {p.width}x{p.height}, {p.steps} steps") as timing:
            result = self._run(pipe, kwargs, seed, pipes.fast)
        pipes.fast.calls += 1
        if compiling and pipes.fast.compiled:
            pipes.fast.save_compile_cache()
            md["first_call_compiled"] = True
        img = result.images[0].convert("RGB")
        size = (out_params.width, out_params.height)
        if img.size != size:
            img = ImageOps.fit(img, size, Image.Resampling.LANCZOS)
        md["denoising_steps"] = progress.total or p.steps
        if fresh:
            md["load_ms"] = self.host.load_ms(key)
        md.update(timing)
        md.update(pipes.fast.summary())
        self.last_metadata = md
        return img

    def _true_cfg(self, pipe, kwargs: dict, fast: FastPath) -> dict:
        p = self.params
        if p.true_cfg_scale <= 1:
            return {}
        takes = set(inspect.signature(pipe.__call__).parameters)
        why = ""
        if not {"negative_prompt", "true_cfg_scale"} <= takes:
            why = f"{type(pipe).__name__} has no true CFG"
        elif fast.step_cache and not opens_cache_context(pipe):
            why = (f"{type(pipe).__name__} runs its conditional and negative passes in one first-block-cache context; "
                   f"turn ADGEN_FLUX__FIRST_BLOCK_CACHE off to use a negative prompt")
        if why:
            log.info("flux: true_cfg_scale=%s ignored: %s", p.true_cfg_scale, why)
            return {"true_cfg": f"ignored: {why}"}
        negative = prompt_text(p.negative_prompt or DEFAULT_NEGATIVE_PROMPT, MAX_PROMPT_CHARS)
        kwargs.update(negative_prompt=negative, true_cfg_scale=p.true_cfg_scale)
        return {"true_cfg_scale": p.true_cfg_scale, "negative_prompt": negative}

    def _run(self, pipe, kwargs: dict, seed: int, fast: FastPath):
        try:
            if fast.step_cache and not opens_cache_context(pipe):
                # a first-block cache needs a cache context around the transformer's calls; FluxPipeline opens one
                # per pass, FluxImg2ImgPipeline (diffusers 0.42) none: one for the whole call (true CFG is off then)
                with pipe.transformer.cache_context("cond"):
                    return pipe(generator=_generator(seed), **kwargs)
            return pipe(generator=_generator(seed), **kwargs)
        except Exception as exc:
            if is_oom(exc) or not fast.compiled or fast.calls > 0 or not _is_compile_error(exc):
                raise
            reason = f"failed at the first call ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); ran eager"
            log.warning("flux: torch.compile %s", reason)
            fast.uncompile(reason)
            return pipe(generator=_generator(seed), **kwargs)


class _Progress:
    """`callback_on_step_end`: one log line every `every` steps ("flux step 10/50, 2.1 s")."""

    def __init__(self, every: int):
        self.every = every
        self.t0 = time.perf_counter()
        self.total = 0

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        self.total = int(getattr(pipe, "num_timesteps", 0) or getattr(pipe, "_num_timesteps", 0) or 0)
        done = step + 1
        if self.every and (done % self.every == 0 or done == self.total):
            log.info("flux step %d/%d, %.1f s", done, self.total, time.perf_counter() - self.t0)
        return callback_kwargs


# --- the numerical check ------------------------------------------------------------------


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
