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

The prompt is `flux_prompt`, the fast path `flux_fast_path`, its numerical check `flux_check`.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from PIL import Image, ImageOps

from adgen_dagster.imaging.backdrop import BackdropParams, render_studio
from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.models.errors import ModelError, import_torch, is_oom
from adgen_dagster.models.flux_fast_path import FastPath, apply_fast_path, fast_path_key, is_compile_error
from adgen_dagster.models.flux_prompt import MAX_PROMPT_CHARS, build_prompt, prompt_text
from adgen_dagster.models.host import ModelHost
from adgen_dagster.models.params import DEFAULT_NEGATIVE_PROMPT, FluxParams
from adgen_dagster.models.weights import locate, weights_bytes

log = logging.getLogger("adgen_dagster.models")


SETTING = "ADGEN_FLUX__MODEL"


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
    """The `flux` background (`imaging.backend.BackgroundRenderer`; see the module's docstring)."""

    name: ClassVar[str] = "flux"
    description: ClassVar[str] = "FLUX.1 (diffusers) txt2img or img2img from the studio sweep, on the GPU"
    params_model: ClassVar[type[FluxParams]] = FluxParams
    settings_field: ClassVar[str] = "flux"
    batch_size: ClassVar[int] = 1  # one image per pipeline call

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
            if is_oom(exc) or not fast.compiled or fast.calls > 0 or not is_compile_error(exc):
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
