"""The FLUX prompt from a product's details: name or headline, category, style, in a template.

Details are untrusted text from uploads: markup, control characters and braces are taken
out (the template's own placeholders are the only ones), lengths are bounded, any script
is kept.
"""

from __future__ import annotations

import re
import unicodedata

from adgen_dagster.imaging.details import ProductDetails
from adgen_dagster.imaging.text_clean import clean_text
from adgen_dagster.models.params import DEFAULT_BACKGROUND_PROMPT


MAX_SUBJECT_CHARS = 120
MAX_STYLE_CHARS = 200
MAX_PROMPT_CHARS = 1000


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
