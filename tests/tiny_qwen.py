"""A tiny Qwen2-VL with random weights, built from configs and saved like a hub snapshot.

The folder holds what the real `Qwen/Qwen2-VL-7B-Instruct` snapshot holds, only tiny:
`config.json` + weights (`Qwen2VLForConditionalGeneration.save_pretrained`), a byte-level
BPE tokenizer built with the `tokenizers` library whose special tokens have the ids the
config names (`image_token_id`, `video_token_id`, `vision_start_token_id`, ...), the real
Qwen2-VL chat template, and `preprocessor_config.json` for the image processor. So the
analyzer's real loading code (AutoConfig, the model class, AutoProcessor or the
image-only fallback) runs on it unchanged. Random weights answer garbage, which is what
the tests want: the classical fallback must then fill every field.
"""

from __future__ import annotations

import json
from pathlib import Path

# The chat template shipped with Qwen2-VL-7B-Instruct, verbatim; the analyzer keeps the one
# copy (for folders that lack it), and the tiny snapshot ships it like the real one does.
from adgen_dagster.models.qwen_loading import QWEN2_VL_CHAT_TEMPLATE

# In the order of the real vocabulary (151643...): ids follow the 256 byte tokens here.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]


def build_tokenizer():
    """A byte-level BPE (one token per byte, no merges) plus Qwen2-VL's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def tiny_config(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2):
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = hidden // heads
    half = head_dim // 2  # mrope_section splits the rotary half-dimension into (temporal, height, width)
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # 7B: head 128 -> [16, 24, 24]
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=False,
        ),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=hidden, num_heads=2, mlp_ratio=2, in_channels=3,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


PREPROCESSOR_CONFIG = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
    "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "resample": 3,
}


def build_tiny_qwen2_vl(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2-VL (model, tokenizer, chat template, image processor) to `folder`."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [config.text_config.eos_token_id, config.text_config.bos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2_VL_CHAT_TEMPLATE}, indent=2))
    return folder
