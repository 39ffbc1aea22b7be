"""Qwen2-VL-7B answering for one 1024x1024 image: plain transformers usage vs the analyzer's path.

    python bench/gpu_qwen.py [--repeats 3] [--tiny] [--device cuda]

Called by `bench/gpu.py` (`qwen_rows`), or on its own. No weights are downloaded: the
Qwen2-VL-7B-Instruct architecture (its real config.json values) is built with random
weights directly on the device in bfloat16 (no CPU copy), with a byte-level tokenizer
whose special tokens have the real ids, and the real chat template and image processor
settings (`preprocessor_config.json`: min_pixels 3136, max_pixels 12845056). Random
weights answer garbage, so every variant is forced to exactly `new_tokens` (200) new
tokens (`min_new_tokens = max_new_tokens`): the work per answer is the same and only the
path differs.

Rows:
- `plain transformers`: the reference scripts' usage: the model with default settings,
  its shipped generation config (sampling, top_k=1, repetition penalty 1.05), the
  processor at its default max pixels, `model.generate(**inputs, max_new_tokens=200)`.
- `qwen2-vl analyzer`: what `QwenAnalyzer` runs per attempt (`prepare_inputs` +
  `generate_answer`): the image resized to `image_size` (1024) on its longest side, sdpa
  attention, greedy decoding, under `torch.inference_mode`.
- `+ static cache`, `+ static cache + compile`: the same with `QwenParams.static_cache`
  and `QwenParams.compile` (`QwenParams.fast()`); the compile happens in the warm-up run
  and is reported separately.

Each row: seconds per answer (median of `repeats` after one warm-up), new tokens per
second over the whole answer (prefill included), peak GPU memory (GB) and speed-up over
the plain row. `--tiny` builds a tiny model of the same family for a CPU smoke test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Qwen/Qwen2-VL-7B-Instruct config.json (the values that shape the compute).
QWEN2_VL_7B = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, max_position_embeddings=32768, max_window_layers=28, rms_norm_eps=1e-6,
    sliding_window=32768, use_sliding_window=False, hidden_act="silu",
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False,
)
QWEN2_VL_7B_VISION = dict(depth=32, embed_dim=1280, hidden_size=3584, mlp_ratio=4, num_heads=16, in_channels=3,
                          patch_size=14, spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu")
# Its generation_config.json: what `generate()` does when called plainly.
QWEN2_VL_7B_GENERATION = dict(bos_token_id=151643, pad_token_id=151643, do_sample=True, eos_token_id=[151645, 151643],
                              repetition_penalty=1.05, temperature=0.01, top_p=0.001, top_k=1)
# Its preprocessor_config.json.
QWEN2_VL_PREPROCESSOR = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2, merge_size=2,
                             image_mean=[0.48145466, 0.4578275, 0.40821073],
                             image_std=[0.26862954, 0.26130258, 0.27577711])
# Special tokens from id 151643 on, as in the real vocabulary.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
FIRST_SPECIAL = 151643
TINY_FIRST_SPECIAL = 256  # tiny: the special tokens right after the bytes (a 152k vocabulary is slow on a CPU)


def special_ids(first: int = FIRST_SPECIAL) -> dict[str, int]:
    """The config's token ids (the real ones: vision_start 151652, image 151655, video 151656, ...)."""
    ids = {t: first + i for i, t in enumerate(SPECIAL_TOKENS)}
    return dict(vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])


def qwen2_vl_config(tiny: bool = False):
    """The Qwen2-VL-7B-Instruct config, or (tiny) the same family at toy size with the same vocabulary."""
    from transformers import Qwen2VLConfig

    text, vision = dict(QWEN2_VL_7B), dict(QWEN2_VL_7B_VISION)
    ids = special_ids(TINY_FIRST_SPECIAL if tiny else FIRST_SPECIAL)
    if tiny:
        text.update(vocab_size=TINY_FIRST_SPECIAL + len(SPECIAL_TOKENS), bos_token_id=ids["bos_token_id"],
                    eos_token_id=ids["eos_token_id"], hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_window_layers=2,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]})
        vision.update(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def bench_tokenizer(first_special: int = FIRST_SPECIAL):
    """Byte-level tokens 0..255, unused fillers up to 151642, then Qwen2-VL's special tokens at their real ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from adgen_dagster.models.qwen_loading import QWEN2_VL_CHAT_TEMPLATE

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), first_special)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    assert fast.convert_tokens_to_ids("<|image_pad|>") == special_ids(first_special)["image_token_id"]
    return fast


def bench_processor(first_special: int = FIRST_SPECIAL):
    """The image-only Qwen2-VL processor (as the analyzer builds it without torchvision), real settings."""
    from adgen_dagster.models.qwen_loading import QWEN2_VL_CHAT_TEMPLATE, image_only_processor_class, image_processor_class

    image_processor = image_processor_class()(**QWEN2_VL_PREPROCESSOR)
    return image_only_processor_class()(image_processor, bench_tokenizer(first_special),
                                        chat_template=QWEN2_VL_CHAT_TEMPLATE)


def build_full_qwen2_vl(device, dtype=None, tiny: bool = False):
    """Qwen2-VL-7B (or tiny) with random weights, allocated directly on `device` in `dtype` (bf16 on GPUs).

    Returns the analyzer's `QwenModel` bundle (model + processor), so both paths use it.
    """
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    from adgen_dagster.models.qwen_loading import QwenModel

    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = qwen2_vl_config(tiny)
    torch.manual_seed(0)
    with torch.device(device):  # parameters are created on the device: no CPU copy of 16 GB
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    gen = dict(QWEN2_VL_7B_GENERATION)
    if tiny:
        gen.update(bos_token_id=config.text_config.bos_token_id, pad_token_id=config.text_config.bos_token_id,
                   eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id])
    model.generation_config = GenerationConfig(**gen)
    processor = bench_processor(TINY_FIRST_SPECIAL if tiny else FIRST_SPECIAL)
    return QwenModel(model, processor, "qwen2_vl", "image-only (bench)", "random weights")


def bench_image(size: int = 1024):
    """A deterministic 1024x1024 product-like photo."""
    from tests.imagegen import product_photo

    return product_photo().convert("RGB").resize((size, size))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gb(device) -> Optional[float]:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 1024**3, 2)


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def plain_answer(bundle, image, new_tokens: int) -> int:
    """The reference scripts' way: chat template, processor with its defaults, `generate(max_new_tokens=...)`."""
    from adgen_dagster.models.qwen_answer import PROMPT

    processor, model = bundle.processor, bundle.model
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], padding=True, return_tensors="pt").to(model.device)
    out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    answer = out[:, inputs["input_ids"].shape[1]:]
    processor.batch_decode(answer, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return int(answer.shape[1])


def analyzer_answer(bundle, image, new_tokens: int, params) -> int:
    """What `QwenAnalyzer` runs for one attempt, forced to `new_tokens` tokens."""
    import torch

    from adgen_dagster.models.qwen_answer import first_messages
    from adgen_dagster.models.qwen_loading import generate_answer, prepare_inputs

    with torch.inference_mode():
        inputs, _ = prepare_inputs(bundle, image, first_messages(), params.image_size)
        _, n = generate_answer(bundle, inputs, new_tokens, static_cache=params.static_cache, compile=params.compile,
                               min_new_tokens=new_tokens)
    return n


def visual_tokens(bundle, image, image_size: Optional[int]) -> int:
    """Visual tokens the model sees for `image` (None: the processor's defaults)."""
    from adgen_dagster.models.qwen_loading import sized_for_model

    ip = bundle.processor.image_processor
    if image_size is not None:
        image = sized_for_model(image, image_size, ip.patch_size * ip.merge_size)
        return (image.width // ip.patch_size) * (image.height // ip.patch_size) // ip.merge_size**2
    return ip.get_number_of_image_patches(image.height, image.width) // ip.merge_size**2


def qwen_rows(device=None, repeats: int = 3, tiny: bool = False, new_tokens: int = 200, image_size: int = 1024,
              dtype=None, bundle=None, log=print) -> list[tuple[str, float, float, Optional[float], float]]:
    """Rows (name, s/answer, tokens/s, peak GB, speed-up vs plain) for one image and `new_tokens` tokens."""
    import torch

    from adgen_dagster.models.params import QwenParams

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    bundle = bundle or build_full_qwen2_vl(device, dtype, tiny=tiny)
    _sync(device)
    n_params = sum(p.numel() for p in bundle.model.parameters())
    log(f"qwen2-vl: built {'tiny' if tiny else '7B'} ({n_params / 1e9:.2f} B parameters, "
        f"{next(bundle.model.parameters()).dtype}) on {device} in {time.perf_counter() - t0:.1f} s")
    image = bench_image(1024 if not tiny else max(112, image_size))
    log(f"qwen2-vl: visual tokens: plain {visual_tokens(bundle, image, None)}, "
        f"analyzer {visual_tokens(bundle, image, image_size)}")

    base = QwenParams(model="(random)", image_size=image_size, max_new_tokens=max(16, new_tokens))
    variants: list[tuple[str, Any]] = [
        ("plain transformers (reference usage)", lambda: plain_answer(bundle, image, new_tokens)),
        ("qwen2-vl analyzer (sdpa, greedy)", lambda: analyzer_answer(bundle, image, new_tokens, base)),
    ]
    fast_note = "" if device.type == "cuda" else " [ignored off GPU]"
    variants.append((f"  + static cache{fast_note}", lambda: analyzer_answer(
        bundle, image, new_tokens, base.model_copy(update={"static_cache": True}))))
    variants.append((f"  + static cache + compile{fast_note}", lambda: analyzer_answer(bundle, image, new_tokens,
                                                                                      base.fast())))
    rows: list[tuple[str, float, float, Optional[float], float]] = []
    plain_s = None
    for name, run in variants:
        _reset_peak(device)
        t = time.perf_counter()
        n = run()  # warm-up (and the compile, for the compiled variant)
        _sync(device)
        warm = time.perf_counter() - t
        assert n == new_tokens, f"{name}: {n} tokens generated, expected {new_tokens}"
        times = []
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            n = run()
            _sync(device)
            times.append(time.perf_counter() - t)
            assert n == new_tokens, f"{name}: {n} tokens generated, expected {new_tokens}"
        s = statistics.median(times)
        plain_s = plain_s or s
        rows.append((name, round(s, 3), round(new_tokens / s, 1), _peak_gb(device), round(plain_s / s, 2)))
        log(f"qwen2-vl: {name}: {s:.3f} s/answer (warm-up {warm:.1f} s)")
    return rows


QWEN_HEADERS = ["qwen2-vl-7b, 1 image 1024x1024, 200 tokens", "s/answer", "tokens/s", "peak GB", "speed-up"]


def main(argv: Optional[list[str]] = None) -> None:
    from bench._util import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="a tiny model of the same family (CPU smoke test)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--new-tokens", type=int, default=200)
    args = ap.parse_args(argv)
    rows = qwen_rows(args.device, repeats=args.repeats, tiny=args.tiny, new_tokens=args.new_tokens,
                     image_size=112 if args.tiny else 1024)
    print_table(QWEN_HEADERS, [[r[0], r[1], r[2], "n/a" if r[3] is None else r[3], r[4]] for r in rows])


if __name__ == "__main__":
    main()
