"""The Qwen2-VL conversation and its answer: the prompt, JSON extraction, per-field validation, retries.

No keyword search: the first balanced `{...}` is parsed as JSON and each field is
validated on its own (`VlmAnswer`), so one bad field costs only that field, and the retry
tells the model exactly what was wrong. No torch here: all of it is tested on strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator


# The fields the model is asked for, in the order of the prompt.
VLM_FIELDS = ("tone", "main_colours", "mood", "text_position", "text_colour")

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


class AnswerError(ValueError):
    """The answer holds no usable JSON object."""


def clip(text: str, limit: int = 80) -> str:
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
        raise ValueError(f"{clip(value, 30)!r} is not a '#rrggbb' colour")
    h = m.group(1).lower()
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return "#" + h


def _word(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a mood word must be a string, not {type(value).__name__}")
    w = " ".join(value.strip().lower().split())
    if not w or len(w) > 24 or not all(c.isalpha() or c in " -" for c in w) or len(w.split()) > 2:
        raise ValueError(f"{clip(value, 30)!r} is not a mood word")
    return w


def _unique_items(v: Any, clean: Callable[[Any], str], what: str) -> list[str]:
    """A list answer's items, each cleaned (or the field rejected), duplicates dropped, in order."""
    if not isinstance(v, list):
        raise ValueError(f"must be a list of {what}, not {type(v).__name__}")
    return list(dict.fromkeys(clean(item) for item in v))


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
        out = _unique_items(v, normalise_hex, "'#rrggbb' colours")
        if not 1 <= len(out) <= 8:
            raise ValueError(f"must hold 1 to 8 colours, not {len(out)}")
        return out

    @field_validator("mood", mode="before")
    @classmethod
    def _mood(cls, v):
        out = _unique_items(v, _word, "words")
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
            errors[name] = "; ".join(clip(e["msg"].removeprefix("Value error, "), 120) for e in exc.errors())
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
        {"role": "assistant", "content": clip(previous, 1200) or "(empty)"},
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
