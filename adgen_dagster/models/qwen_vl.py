"""`qwen2-vl` analyzer: Qwen2-VL / Qwen2.5-VL judges the image, the classical analysis measures it.

What a vision-language model can judge, it answers as one small JSON object: the tone
(warm | cool | neutral), the main colours (hex), a few mood words, where a headline fits
(top | center | bottom) and a text colour. The answer is taken apart without any keyword
search: the first balanced `{...}` in it is parsed as JSON and each field is validated on
its own (`VlmAnswer`), so one bad field costs only that field. While fields are missing or
invalid the model is asked again (`QwenParams.retries` times), told what was wrong; then
`analyze_classical` fills whatever is still missing. What needs measuring, not judging
(size, brightness, the product box, the text box and its busyness, contrast) always comes
from the classical analysis, and the model's choices are checked against it:

- its text position picks the classical text box at that position when one is free there
  (else the classical choice stays, and the metadata says why);
- its text colour is kept only if its WCAG contrast on that box reaches
  `AnalysisParams.min_contrast` (4.5 by default), else the classical colour;
- its main colours get shares measured on the image (nearest colour in Lab).

`last_metadata` says where every field came from (`field_sources`), why a field fell back
(`fallback_reasons`), the attempts, the raw answer, device, precision and timings.

torch and transformers are imported on the first call, not at import.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
from PIL import Image
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from adgen_dagster.imaging.analysis_model import Analysis, ColourShare
from adgen_dagster.imaging.analyze import AnalysisParams, analyze_classical
from adgen_dagster.imaging.colour import contrast_ratio, hex_luminance, hex_to_rgb, relative_luminance, srgb_to_lab
from adgen_dagster.models.params import QwenParams
from adgen_dagster.models.weights import weights_bytes
from adgen_dagster.models.errors import ModelError, is_oom

log = logging.getLogger("adgen_dagster.models")

BACKEND = "qwen2-vl"
SETTING = "ADGEN_QWEN2_VL__MODEL"
ANALYZER_SETTING = "ADGEN_ANALYZER"
RAW_LIMIT = 600  # characters of a raw answer kept in the metadata

# The fields the model is asked for, in the order of the prompt.
VLM_FIELDS = ("tone", "main_colours", "mood", "text_position", "text_colour")
# Every field of the result, as named in `field_sources`.
RESULT_FIELDS = ("width", "height", "tone", "brightness", "main_colours", "mood", "product_box", "text_zone.position",
                 "text_zone.box", "text_zone.busyness", "text_colour", "text_contrast")
# Result field <- answer field, for the fields the model may supply.
FROM_ANSWER = {"tone": "tone", "main_colours": "main_colours", "mood": "mood", "text_zone.position": "text_position",
               "text_colour": "text_colour"}

PROMPT = """You are an art director checking a product photo before a headline is placed on it.
Look at the image and answer with one JSON object and nothing else, with exactly these keys:
{
  "tone": "warm" or "cool" or "neutral",
  "main_colours": ["#rrggbb", ...],
  "mood": ["word", ...],
  "text_position": "top" or "center" or "bottom",
  "text_colour": "#rrggbb"
}
tone: the overall colour temperature of the image.
main_colours: the 2 to 5 most visible colours, most prominent first, as lowercase hex codes.
mood: 1 to 4 single words for the feeling of the image (for example calm, premium, playful).
text_position: where a one-line headline fits best without covering the product.
text_colour: a headline colour that is clearly legible on the background at that position."""

RETRY_PROMPT = """That answer could not be used: {problems}.
Answer again with only the JSON object: the keys tone, main_colours, mood, text_position and text_colour, \
the values as described before, no other text."""

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


# ------------------------------------------------------------------------------------
# the answer: JSON extraction and per-field validation


class AnswerError(ValueError):
    """The answer holds no usable JSON object."""


def _clip(text: str, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def extract_json(text: str) -> dict:
    """The first balanced `{...}` of `text` that parses as a JSON object.

    Code fences and prose around it are ignored; braces inside JSON strings do not count.
    Raises `AnswerError` saying what was wrong (no object, an unclosed one, invalid JSON).
    """
    first_error = ""
    start = text.find("{")
    if start < 0:
        raise AnswerError("no JSON object in the answer")
    while start >= 0:
        end = _balanced_end(text, start)
        if end is None:
            raise AnswerError(first_error or "the JSON object is not closed (the answer was cut off)")
        candidate = text[start:end]
        try:
            doc = json.loads(candidate)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"not valid JSON ({exc.msg} at character {exc.pos})"
        else:
            if isinstance(doc, dict):
                return doc
        start = text.find("{", start + 1)
    raise AnswerError(first_error or "no JSON object in the answer")


def _balanced_end(text: str, start: int) -> Optional[int]:
    """Index just past the `}` closing the `{` at `start`, skipping JSON strings; None if never closed."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def normalise_hex(value: Any) -> str:
    """'#FFF5E1', 'fff5e1' or '#fe1' -> '#fff5e1' / '#ffee11'; anything else is an error."""
    if not isinstance(value, str):
        raise ValueError(f"a colour must be a '#rrggbb' string, not {type(value).__name__}")
    m = _HEX.match(value.strip())
    if not m:
        raise ValueError(f"{_clip(value, 30)!r} is not a '#rrggbb' colour")
    h = m.group(1).lower()
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return "#" + h


def _word(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a mood word must be a string, not {type(value).__name__}")
    w = " ".join(value.strip().lower().split())
    if not w or len(w) > 24 or not all(c.isalpha() or c in " -" for c in w) or len(w.split()) > 2:
        raise ValueError(f"{_clip(value, 30)!r} is not a mood word")
    return w


class VlmAnswer(BaseModel):
    """The model's answer; every field optional, so each one is validated (and dropped) on its own."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tone: Optional[Literal["warm", "cool", "neutral"]] = None
    main_colours: Optional[list[str]] = Field(None, validation_alias=AliasChoices("main_colours", "main_colors"))
    mood: Optional[list[str]] = None
    text_position: Optional[Literal["top", "center", "bottom"]] = Field(
        None, validation_alias=AliasChoices("text_position", "layout"))
    text_colour: Optional[str] = Field(None, validation_alias=AliasChoices("text_colour", "text_color"))

    @field_validator("tone", mode="before")
    @classmethod
    def _tone(cls, v):
        if isinstance(v, str):
            return v.strip().lower()
        raise ValueError(f"must be one of warm, cool, neutral, not {type(v).__name__}")

    @field_validator("text_position", mode="before")
    @classmethod
    def _position(cls, v):
        if isinstance(v, str):
            v = v.strip().lower()
            return {"centre": "center", "middle": "center"}.get(v, v)
        raise ValueError(f"must be one of top, center, bottom, not {type(v).__name__}")

    @field_validator("main_colours", mode="before")
    @classmethod
    def _colours(cls, v):
        if not isinstance(v, list):
            raise ValueError(f"must be a list of '#rrggbb' colours, not {type(v).__name__}")
        out = list(dict.fromkeys(normalise_hex(item) for item in v))  # unique, in order
        if not 1 <= len(out) <= 8:
            raise ValueError(f"must hold 1 to 8 colours, not {len(out)}")
        return out

    @field_validator("mood", mode="before")
    @classmethod
    def _mood(cls, v):
        if not isinstance(v, list):
            raise ValueError(f"must be a list of words, not {type(v).__name__}")
        out = list(dict.fromkeys(_word(item) for item in v))  # unique, in order
        if not out:
            raise ValueError("must hold at least one word")
        return out[:5]

    @field_validator("text_colour", mode="before")
    @classmethod
    def _text_colour(cls, v):
        return normalise_hex(v)


@dataclass
class ParsedAnswer:
    """The valid fields of one answer and, for each field that is not, what was wrong."""

    values: dict[str, Any]
    errors: dict[str, str]
    error: str = ""  # the answer as a whole had no usable JSON

    @property
    def complete(self) -> bool:
        return not self.errors and not self.error


def parse_answer(text: str) -> ParsedAnswer:
    """Extract the JSON object and validate each field; never looks for words in prose."""
    try:
        doc = extract_json(text)
    except AnswerError as exc:
        return ParsedAnswer({}, {f: str(exc) for f in VLM_FIELDS}, str(exc))
    errors: dict[str, str] = {}
    present = {}
    for name, info in VlmAnswer.model_fields.items():
        aliases = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else [name]
        key = next((a for a in aliases if a in doc), None)
        if key is None or doc[key] is None:
            errors[name] = "missing"
            continue
        try:  # one field at a time: a bad field never spoils the others
            value = getattr(VlmAnswer.model_validate({key: doc[key]}), name)
        except ValidationError as exc:
            errors[name] = "; ".join(_clip(e["msg"].removeprefix("Value error, "), 120) for e in exc.errors())
            continue
        present[name] = value
    return ParsedAnswer(present, errors)


@dataclass
class Attempts:
    """What the model answered over all attempts; later valid fields replace earlier ones."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    raws: list[str] = field(default_factory=list)
    parse_errors: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)


def describe_problems(parsed: ParsedAnswer) -> str:
    if parsed.error:
        return parsed.error
    return "; ".join(f"{k}: {v}" for k, v in parsed.errors.items())


def first_messages(prompt: str = PROMPT) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def retry_messages(previous: str, parsed: ParsedAnswer, prompt: str = PROMPT) -> list[dict]:
    """The first question, the unusable answer, and what was wrong with it."""
    return first_messages(prompt) + [
        {"role": "assistant", "content": _clip(previous, 1200) or "(empty)"},
        {"role": "user", "content": [{"type": "text",
                                      "text": RETRY_PROMPT.format(problems=describe_problems(parsed))}]},
    ]


def ask_until_valid(ask: Callable[[list[dict]], tuple[str, int]], retries: int) -> Attempts:
    """Ask (1 + retries times at most) until every field is valid; `ask(messages) -> (answer, tokens)`."""
    out = Attempts()
    messages = first_messages()
    for _ in range(1 + retries):
        raw, tokens = ask(messages)
        out.raws.append(raw)
        out.tokens.append(tokens)
        parsed = parse_answer(raw)
        out.values.update(parsed.values)
        out.errors = {k: v for k, v in {**out.errors, **parsed.errors}.items() if k not in out.values}
        if not parsed.complete:
            out.parse_errors.append(describe_problems(parsed))
        if not out.errors:
            break
        messages = retry_messages(raw, parsed)
    return out


# ------------------------------------------------------------------------------------
# merging the answer with the classical analysis


def measured_shares(image: Image.Image, colours: list[str], work_size: int = 64) -> list[ColourShare]:
    """Each colour's share of the image's pixels (nearest in Lab), largest first."""
    small = image.convert("RGB")
    small.thumbnail((work_size, work_size), Image.Resampling.BOX)
    lab = srgb_to_lab(np.asarray(small, np.float32).reshape(-1, 3) / 255.0)
    ref = srgb_to_lab(np.array([hex_to_rgb(c) for c in colours], np.float32) / 255.0)
    nearest = np.argmin(((lab[:, None, :] - ref[None, :, :]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(colours)).astype(np.float64)
    shares = counts / max(1.0, counts.sum())
    order = sorted(range(len(colours)), key=lambda i: -shares[i])
    return [ColourShare(hex=colours[i], share=round(float(shares[i]), 4)) for i in order]


def zone_contrast(image: Image.Image, box, colour: str, max_pixels: int = 250_000) -> float:
    """WCAG contrast of `colour` on the mean relative luminance of `box` (as `text_contrast` is defined)."""
    crop = np.asarray(image.convert("RGB").crop((box.x0, box.y0, box.x1, box.y1)), np.float32)
    step = max(1, int(np.sqrt(crop.shape[0] * crop.shape[1] / max_pixels)))
    lum = float(relative_luminance(crop[::step, ::step] / 255.0).mean())
    return contrast_ratio(hex_luminance(colour), lum)


def _classical_at(image, mask, params: AnalysisParams, position: str) -> Optional[Analysis]:
    """The classical analysis with its text box forced to `position`; None if no box is free there."""
    forced = params.model_copy(update={"position_order": position, "position_penalty": 1000.0})
    result = analyze_classical(image, mask, forced)
    return result if result.text_zone.position == position else None


def merge_answer(
    values: dict[str, Any],
    errors: dict[str, str],
    image: Image.Image,
    mask: Optional[Image.Image],
    params: AnalysisParams,
    classical: Optional[Analysis] = None,
) -> tuple[Analysis, dict[str, str], dict[str, str]]:
    """(analysis, field_sources, fallback_reasons) from the model's valid fields and the classical analysis."""
    base = classical if classical is not None else analyze_classical(image, mask, params)
    sources = {f: "classical" for f in RESULT_FIELDS}
    reasons: dict[str, str] = {}
    for result_field, answer_field in FROM_ANSWER.items():
        if answer_field not in values:
            reasons[result_field] = f"answer: {errors.get(answer_field, 'missing')}"

    update: dict[str, Any] = {"backend": BACKEND}
    if "tone" in values:
        update["tone"], sources["tone"] = values["tone"], BACKEND
    if "mood" in values:
        update["mood"], sources["mood"] = list(values["mood"]), BACKEND
    if "main_colours" in values:
        update["main_colours"] = [c.model_dump() for c in measured_shares(image, values["main_colours"])]
        sources["main_colours"] = BACKEND

    # Text box: the classical box at the model's position, when there is a free one.
    zoned = base
    want = values.get("text_position")
    if want is not None:
        if want == base.text_zone.position:
            sources["text_zone.position"] = BACKEND
        else:
            at = _classical_at(image, mask, params, want)
            if at is not None:
                zoned = at
                sources["text_zone.position"] = BACKEND
            else:
                reasons["text_zone.position"] = (f"no free text box at {want} (the product is in the way); "
                                                 f"kept the classical {base.text_zone.position}")
    update["text_zone"] = zoned.text_zone.model_dump()
    update["text_colour"], update["text_contrast"] = zoned.text_colour, zoned.text_contrast

    # Text colour: the model's, if legible on that box.
    colour = values.get("text_colour")
    if colour is not None:
        c = zone_contrast(image, zoned.text_zone.box, colour)
        if c >= params.min_contrast:
            update["text_colour"], update["text_contrast"] = colour, round(float(np.clip(c, 1.0, 21.0)), 3)
            sources["text_colour"] = BACKEND
        else:
            reasons["text_colour"] = (f"{colour} has contrast {c:.2f} on the {zoned.text_zone.position} text box, "
                                      f"below {params.min_contrast:g}; used the classical {zoned.text_colour}")
    return Analysis.model_validate({**base.model_dump(mode="json"), **update}), sources, reasons


# ------------------------------------------------------------------------------------
# the model: loading, the image-only processor, generation


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
        why = f"AutoProcessor failed: {type(exc).__name__}: {_clip(first_line, 100)}"
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
# the backend


class QwenAnalyzer:
    """`(image, mask, AnalysisParams) -> Analysis` with Qwen2-VL; nothing loads before the first call."""

    def __init__(self, params: QwenParams, host):
        self.params = params
        self.host = host
        self.last_metadata: dict[str, Any] = {}  # an attribute: `Backend.last_metadata()` reads it

    def _bundle(self) -> tuple[QwenModel, Optional[float]]:
        from .errors import import_torch

        from .weights import locate

        import_torch(BACKEND, ANALYZER_SETTING)
        self.host.require_accelerator(BACKEND, ANALYZER_SETTING)
        folder = locate(self.params.model, SETTING)
        key = f"{BACKEND}:{folder.resolve()}"
        before = self.host.loads
        device, dtype = self.host.device, self.host.dtype
        bundle = self.host.model(key, lambda: load_qwen(folder, device, dtype), f"Qwen2-VL ({self.params.model})",
                                 size_hint=weights_bytes(folder))
        return bundle, (self.host.load_ms(key) if self.host.loads > before else None)

    def ask(self, bundle: QwenModel, image: Image.Image, messages: list[dict],
            min_new_tokens: Optional[int] = None) -> tuple[str, int]:
        inputs, _ = prepare_inputs(bundle, image, messages, self.params.image_size)
        return generate_answer(bundle, inputs, self.params.max_new_tokens, static_cache=self.params.static_cache,
                               compile=self.params.compile, min_new_tokens=min_new_tokens)

    def __call__(self, image: Image.Image, mask: Optional[Image.Image], analysis_params: AnalysisParams) -> Analysis:
        p = analysis_params or AnalysisParams()
        self.last_metadata = {}
        bundle, load_ms = self._bundle()
        with self.host.inference(f"analysing with Qwen2-VL ({self.params.model})") as timing:
            attempts = ask_until_valid(lambda messages: self.ask(bundle, image, messages), self.params.retries)
        result, sources, reasons = merge_answer(attempts.values, attempts.errors, image, mask, p)
        on_gpu = self.host.device.type == "cuda"
        ip = bundle.processor.image_processor
        sized = sized_for_model(image, self.params.image_size, int(ip.patch_size) * int(ip.merge_size))
        md: dict[str, Any] = {
            "field_sources": sources,
            "attempts": len(attempts.raws),
            "raw_answer": _clip(attempts.raws[-1] if attempts.raws else "", RAW_LIMIT),
            "tokens_generated": sum(attempts.tokens),
            "device": str(self.host.device),
            "dtype": str(self.host.dtype).replace("torch.", ""),
            "inference_ms": timing.get("inference_ms"),
            "lock_wait_ms": timing.get("lock_wait_ms"),
            "model": self.params.model,
            "model_type": bundle.model_type,
            "processor": bundle.processor_kind,
            "image_size": self.params.image_size,
            "visual_tokens": (sized.width // ip.patch_size) * (sized.height // ip.patch_size) // ip.merge_size**2,
            "static_cache": bool(on_gpu and (self.params.static_cache or self.params.compile)),
            "compiled": bool(on_gpu and self.params.compile),
        }
        if timing.get("inference_ms"):
            md["tokens_per_s"] = round(sum(attempts.tokens) / (timing["inference_ms"] / 1000), 1)
        if load_ms is not None:
            md["load_ms"] = load_ms
        if reasons:
            md["fallback_reasons"] = reasons
        if attempts.parse_errors:
            md["parse_error"] = _clip(" | ".join(attempts.parse_errors), RAW_LIMIT)
        self.last_metadata = md
        log.info("qwen2-vl analysis: %d attempt(s), %d token(s), fields from the model: %s", md["attempts"],
                 md["tokens_generated"], ", ".join(k for k, v in sources.items() if v == BACKEND) or "none")
        return result
