"""Settings of the GPU resource and of each neural backend (no torch imported here).

Every field is an `ADGEN_*` setting (e.g. `ADGEN_FLUX__STEPS=28`) and a run config field
of the asset that uses it. Fields listed in a model's `RUNTIME_ONLY` change how fast or in
which batches work is done, not what comes out, so they are left out of the cache key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class BackendParams(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    RUNTIME_ONLY: ClassVar[frozenset[str]] = frozenset()

    def key_params(self) -> dict:
        """What decides the output: part of the cache and settings keys."""
        return self.model_dump(mode="json", exclude=set(self.RUNTIME_ONLY))


class GpuSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field("auto", description="Where models run: 'auto' (cuda, then mps, then cpu), 'cuda', 'cuda:1', "
                        "'mps' or 'cpu' (ADGEN_GPU__DEVICE).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights' precision: 'auto' = bfloat16 on GPUs that support it, else float16 on GPUs, "
        "float32 on the CPU (ADGEN_GPU__DTYPE).")
    memory_budget_gb: float = Field(0.0, ge=0, description="Memory the loaded models may take together; the least recently "
                                    "used is unloaded first. 0 = 90% of the GPU's memory, or half the RAM on the CPU "
                                    "(ADGEN_GPU__MEMORY_BUDGET_GB).")
    allow_cpu: bool = Field(False, description="Let the neural backends run on the CPU when no GPU is found: correct but "
                            "very slow for full-size models (ADGEN_GPU__ALLOW_CPU=true).")
    lock_dir: str = Field("", description="Folder of the cross-process GPU lock file; empty = the system temp folder. All "
                          "processes sharing a GPU must use the same folder (ADGEN_GPU__LOCK_DIR).")
    lock_timeout_s: float = Field(6 * 3600.0, gt=0, description="Longest wait for the GPU lock before the step fails "
                                  "(ADGEN_GPU__LOCK_TIMEOUT_S).")


class BiRefNetParams(BackendParams):
    RUNTIME_ONLY: ClassVar[frozenset[str]] = frozenset({"batch_size"})

    model: str = Field("ZhengPeng7/BiRefNet", description="Local folder or Hugging Face id (already in the local hub "
                       "cache) of the BiRefNet weights (ADGEN_BIREFNET__MODEL).")
    input_size: int = Field(1024, ge=64, le=4096, description="Square side the model sees; BiRefNet is trained at 1024 "
                            "(ADGEN_BIREFNET__INPUT_SIZE).")
    batch_size: int = Field(4, ge=1, le=64, description="Products per forward pass (ADGEN_BIREFNET__BATCH_SIZE).")


DEFAULT_BACKGROUND_PROMPT = (
    "professional product photography backdrop for {subject}, {style}, empty seamless studio scene with soft diffused "
    "light and a gentle floor, clean, high detail, no product, no text"
)
DEFAULT_NEGATIVE_PROMPT = "text, letters, watermark, logo, people, hands, clutter, product"


class FluxParams(BackendParams):
    RUNTIME_ONLY: ClassVar[frozenset[str]] = frozenset({"progress_every", "compile", "compile_cache_dir", "fuse_qkv",
                                                         "channels_last_vae", "compile_mode", "compile_regional",
                                                         "cpu_offload"})

    model: str = Field("black-forest-labs/FLUX.1-dev", description="Local folder or Hugging Face id (already in the local "
                       "hub cache) of the FLUX pipeline (ADGEN_FLUX__MODEL).")
    mode: Literal["img2img", "txt2img"] = Field("img2img", description="'img2img' starts from the classical studio backdrop "
                                                "(keeps its palette and sweep), 'txt2img' from noise (ADGEN_FLUX__MODE).")
    width: int = Field(1024, ge=64, le=2048, multiple_of=16, description="Image width (ADGEN_FLUX__WIDTH).")
    height: int = Field(1024, ge=64, le=2048, multiple_of=16, description="Image height (ADGEN_FLUX__HEIGHT).")
    steps: int = Field(50, ge=1, le=200, description="Denoising steps (ADGEN_FLUX__STEPS).")
    guidance: float = Field(3.5, ge=0, le=30, description="Distilled guidance scale (ADGEN_FLUX__GUIDANCE).")
    strength: float = Field(0.6, gt=0, le=1, description="img2img: how far from the starting image (ADGEN_FLUX__STRENGTH).")
    prompt: str = Field(DEFAULT_BACKGROUND_PROMPT, max_length=2000, description="Prompt template; {subject} and {style} "
                        "come from the product's details (ADGEN_FLUX__PROMPT).")
    negative_prompt: str = Field("", max_length=2000, description="Negative prompt, used through true CFG when "
                                 "true_cfg_scale > 1 (doubles the work per step) (ADGEN_FLUX__NEGATIVE_PROMPT).")
    true_cfg_scale: float = Field(1.0, ge=1.0, le=20, description="True classifier-free guidance scale; 1 = off "
                                  "(ADGEN_FLUX__TRUE_CFG_SCALE).")
    max_sequence_length: int = Field(512, ge=16, le=512, description="T5 prompt tokens (ADGEN_FLUX__MAX_SEQUENCE_LENGTH).")
    progress_every: int = Field(10, ge=0, description="Log progress every N steps; 0 = never (ADGEN_FLUX__PROGRESS_EVERY).")
    cpu_offload: bool = Field(False, description="Keep the pipeline in CPU memory and move each model to the GPU only "
                              "while it runs (diffusers' model CPU offload): FLUX.1-dev in bf16 then fits a 24 GB card, "
                              "at the cost of speed, as the reference system ran it (ADGEN_FLUX__CPU_OFFLOAD).")
    # The fast path (issue: GPU speed). Each piece falls back cleanly where unsupported.
    fuse_qkv: bool = Field(False, description="Fuse the attention's Q, K, V projections into one matmul "
                           "(ADGEN_FLUX__FUSE_QKV).")
    channels_last_vae: bool = Field(False, description="Channels-last memory layout for the VAE "
                                    "(ADGEN_FLUX__CHANNELS_LAST_VAE).")
    compile: bool = Field(False, description="torch.compile the transformer and the VAE decoder, with a persistent "
                          "compile cache so only the first run on a machine pays for it (ADGEN_FLUX__COMPILE).")
    compile_mode: Literal["default", "max-autotune-no-cudagraphs", "max-autotune", "reduce-overhead"] = Field(
        "max-autotune-no-cudagraphs", description="torch.compile mode: 'max-autotune-no-cudagraphs' tunes the matmuls "
        "(slow first compile, then cached), 'default' compiles fastest (ADGEN_FLUX__COMPILE_MODE).")
    compile_regional: bool = Field(True, description="Compile only the transformer's repeated blocks (one graph per block "
                                   "type, reused 19 + 38 times): several times less compile time than the whole model "
                                   "for nearly the same speed (ADGEN_FLUX__COMPILE_REGIONAL).")
    compile_cache_dir: str = Field("", description="Persistent compile cache; empty = ~/.cache/adgen/inductor "
                                   "(ADGEN_FLUX__COMPILE_CACHE_DIR).")
    fp8: bool = Field(False, description="fp8 dynamic quantization (row-wise scales, torchao) of the transformer's linear "
                      "layers on GPUs with fp8 (compute capability 8.9+) (ADGEN_FLUX__FP8).")
    first_block_cache: float = Field(0.0, ge=0, le=1, description="First-block cache threshold (diffusers hooks); 0 = off. "
                                     "Skips steps whose first block barely changes; check quality before turning on "
                                     "(ADGEN_FLUX__FIRST_BLOCK_CACHE).")

    def fast(self) -> "FluxParams":
        """The full fast path: every speed-up whose output matches the plain path's (fp8 within its bound)."""
        return self.model_copy(update={"fuse_qkv": True, "channels_last_vae": True, "compile": True, "fp8": True})


class QwenParams(BackendParams):
    RUNTIME_ONLY: ClassVar[frozenset[str]] = frozenset({"static_cache", "compile"})

    model: str = Field("Qwen/Qwen2-VL-7B-Instruct", description="Local folder or Hugging Face id (already in the local "
                       "hub cache) of a Qwen2-VL or Qwen2.5-VL instruct model (ADGEN_QWEN2_VL__MODEL).")
    image_size: int = Field(1024, ge=56, le=2048, description="Longest side of the image the model sees; sets the number "
                            "of visual tokens (ADGEN_QWEN2_VL__IMAGE_SIZE).")
    max_new_tokens: int = Field(256, ge=16, le=2048, description="Longest answer; the JSON asked for needs about 150 "
                                "tokens (ADGEN_QWEN2_VL__MAX_NEW_TOKENS).")
    retries: int = Field(1, ge=0, le=3, description="Further attempts when the answer is not valid JSON for the schema; "
                         "after them the classical analysis fills the missing fields (ADGEN_QWEN2_VL__RETRIES).")
    # The fast path (CUDA only; ignored elsewhere): speed only, the same prompt and greedy decoding either way.
    static_cache: bool = Field(False, description="Pre-allocated KV cache of fixed size (prompt + max_new_tokens); "
                               "needed to compile the decode step. CUDA only (ADGEN_QWEN2_VL__STATIC_CACHE).")
    compile: bool = Field(False, description="torch.compile the decode step (implies static_cache); the first answer "
                          "pays for the compile, later ones run faster. CUDA only (ADGEN_QWEN2_VL__COMPILE).")

    def fast(self) -> "QwenParams":
        """The full fast path: static KV cache and a compiled decode step."""
        return self.model_copy(update={"static_cache": True, "compile": True})
