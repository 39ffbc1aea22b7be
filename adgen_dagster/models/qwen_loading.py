"""Loading Qwen2-VL / Qwen2.5-VL and running it: the model class, the image-only processor, generation.

transformers is imported inside the functions, so importing this costs nothing until a
model is really used; a folder that is not a usable snapshot is one `ModelError` naming
the setting.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from adgen_dagster.models.errors import ModelError, is_oom
from adgen_dagster.models.qwen_answer import clip

SETTING = "ADGEN_QWEN2_VL__MODEL"

# The chat template shipped with Qwen2-VL-7B-Instruct: used only when a model folder has none.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == "
    "'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)


@dataclass
class QwenModel:
    """What `ModelHost` keeps loaded for one model folder."""

    model: Any
    processor: Any
    model_type: str
    processor_kind: str
    folder: str


def _model_class(model_type: str):
    import transformers

    classes = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
    if model_type not in classes:
        raise ModelError(f"{SETTING}: the model's config.json says model_type {model_type!r}; the qwen2-vl analyzer "
                         f"runs Qwen2-VL or Qwen2.5-VL ({', '.join(classes)}); point {SETTING} at one of those")
    return getattr(transformers, classes[model_type])


def image_processor_class():
    """Qwen2-VL's PIL/numpy image processor (the default one needs torchvision in transformers 5)."""
    import transformers

    return getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor


@functools.lru_cache(maxsize=None)
def image_only_processor_class():
    from transformers import Qwen2VLProcessor

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """Qwen2-VL's processor without the video processor (which needs torchvision).

        Leaving `video_processor` out of `__init__`'s signature is what tells
        `ProcessorMixin` not to build one; text and images work as in the stock processor.
        """

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return ImageOnlyQwen2VLProcessor


def _chat_template(folder: Path, tokenizer) -> str:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    js = folder / "chat_template.json"
    if js.is_file():
        try:
            tpl = json.loads(js.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(tpl, str) and tpl:
                return tpl
        except (OSError, ValueError):
            pass
    tpl = getattr(tokenizer, "chat_template", None)
    return tpl if isinstance(tpl, str) and tpl else QWEN2_VL_CHAT_TEMPLATE


def load_processor(folder: Path) -> tuple[Any, str]:
    """(processor, how it was made): `AutoProcessor` when it gives a real one, else the image-only one."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.processing_utils import ProcessorMixin

    try:
        proc = AutoProcessor.from_pretrained(folder, local_files_only=True)
        if (isinstance(proc, ProcessorMixin) and getattr(proc, "image_processor", None) is not None
                and getattr(proc, "tokenizer", None) is not None):
            return proc, "AutoProcessor"
        why = f"AutoProcessor gave a bare {type(proc).__name__}"
    except Exception as exc:  # torchvision missing (transformers 5), or a folder without processor files
        first_line = (str(exc).strip().splitlines() or [""])[0]
        why = f"AutoProcessor failed: {type(exc).__name__}: {clip(first_line, 100)}"
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = image_processor_class().from_pretrained(folder, local_files_only=True)
    proc = image_only_processor_class()(image_processor, tokenizer, chat_template=_chat_template(folder, tokenizer))
    return proc, f"image-only ({why})"


def load_qwen(folder: Path, device, dtype) -> QwenModel:
    """The model (its class chosen by config.json's model_type) and its processor, on `device` in `dtype`."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress goes to our log, not a bar on stderr
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        cls = _model_class(config.model_type)
        model = cls.from_pretrained(folder, dtype=dtype, local_files_only=True, attn_implementation="sdpa",
                                    device_map=str(device)).eval()
        processor, kind = load_processor(folder)
    except (OSError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        if isinstance(exc, ModelError) or is_oom(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{SETTING}: cannot load a Qwen2-VL model from {folder} ({type(exc).__name__}: {first}); "
                         f"point {SETTING} at a complete Qwen2-VL or Qwen2.5-VL instruct snapshot") from None
    return QwenModel(model, processor, config.model_type, kind, str(folder))


def sized_for_model(image: Image.Image, longest: int, factor: int) -> Image.Image:
    """RGB, its longest side about `longest`, both sides multiples of `factor` (patch x merge)."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    s = longest / max(w, h)
    nw, nh = (max(factor, round(side * s / factor) * factor) for side in (w, h))
    return rgb if (nw, nh) == (w, h) else rgb.resize((nw, nh), Image.Resampling.BICUBIC)


def prepare_inputs(bundle: QwenModel, image: Image.Image, messages: list[dict], image_size: int):
    """Token ids, pixel patches and grids for one image and a conversation, on the model's device."""
    proc = bundle.processor
    ip = proc.image_processor
    factor = int(ip.patch_size) * int(ip.merge_size)
    sized = sized_for_model(image, image_size, factor)
    pixels = sized.width * sized.height
    text = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = proc(text=[text], images=[sized], return_tensors="pt",
                  size={"shortest_edge": min(pixels, 56 * 56), "longest_edge": pixels})
    return inputs.to(bundle.model.device), sized


def generate_answer(bundle: QwenModel, inputs, max_new_tokens: int, *, static_cache: bool = False,
                    compile: bool = False, min_new_tokens: Optional[int] = None) -> tuple[str, int]:
    """Greedy answer and the number of tokens generated."""
    import copy

    model = bundle.model
    gen = copy.deepcopy(model.generation_config)
    # Greedy. Explicit neutral values, not None: generate() refills None fields from the model's generation
    # config (Qwen2-VL's samples with top_k=1 and repetition_penalty=1.05; JSON repeats '"#' on purpose).
    gen.do_sample, gen.temperature, gen.top_p, gen.top_k, gen.repetition_penalty = False, 1.0, 1.0, 50, 1.0
    gen.max_new_tokens, gen.use_cache = max_new_tokens, True
    gen.min_new_tokens = min_new_tokens
    if gen.pad_token_id is None:
        tok = bundle.processor.tokenizer
        gen.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    on_gpu = model.device.type == "cuda"  # the fast path is for CUDA; elsewhere plain dynamic cache, eager
    if on_gpu and (static_cache or compile):
        # Cache length rounded up to 256 tokens: a retry's longer prompt usually reuses the compiled decode step.
        gen.cache_implementation = "static"
        gen.max_cache_len = -(-(int(inputs["input_ids"].shape[1]) + max_new_tokens) // 256) * 256
    gen.disable_compile = not (on_gpu and compile)
    out = model.generate(**inputs, generation_config=gen)
    new = out[0, inputs["input_ids"].shape[1]:]
    text = bundle.processor.tokenizer.decode(new, skip_special_tokens=True)
    return text, int(new.shape[0])


# ------------------------------------------------------------------------------------
