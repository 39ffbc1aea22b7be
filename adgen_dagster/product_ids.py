"""Product ids (partition keys) derived from upload names.

Rules from the design: `[a-z0-9][a-z0-9_-]{0,63}`, stable for the same upload name,
unique across upload names, never a path (no `/`, `..`, spaces or commas, which also
break partition selection in the UI). A clean name keeps its stem as the id
(`red-shoe.jpg` -> `red-shoe`); any name that had to be changed to fit (case, spaces,
folders, Hangul, punctuation, length) gets an 8-hex suffix from the full name so two
different uploads cannot collide. Hangul is romanised (Revised Romanization, syllable
by syllable) so Korean file names stay readable in the UI.

One deliberate equivalence: `shoe.jpg` and `shoe.png` are the same product. A shop
owner replacing a photo with another format expects the product to be updated, not
duplicated.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import re
import unicodedata

PRODUCT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAX = 64
_SUFFIX = 9  # "-" + 8 hex

_INITIALS = ["g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h"]
_MEDIALS = [
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo",
    "u", "wo", "we", "wi", "yu", "eu", "ui", "i",
]
_FINALS = [
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l",
    "m", "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
]


def romanize_hangul(text: str) -> str:
    """Romanise Hangul syllables; other characters pass through unchanged."""
    out = []
    for ch in text:
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            out.append(_INITIALS[code // 588] + _MEDIALS[(code % 588) // 28] + _FINALS[code % 28])
        else:
            out.append(ch)
    return "".join(out)


def is_valid_product_id(pid: str) -> bool:
    return bool(PRODUCT_ID_RE.match(pid))


def _slug(text: str) -> str:
    # NFC first: macOS writes Hangul file names decomposed (jamo), which would romanise to nothing.
    text = romanize_hangul(unicodedata.normalize("NFC", text))
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9_-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text)
    return text.strip("-_")


@functools.lru_cache(maxsize=1 << 17)  # a sensor asks again for every upload it lists, tick after tick
def product_id_for(name: str) -> str:
    """The product id for an upload's name relative to `uploads/` (may contain folders)."""
    raw = name.replace("\\", "/")
    rel = raw.strip()
    base = posixpath.basename(rel)
    stem, ext = posixpath.splitext(base)
    if stem.startswith(".") or not stem:  # ".jpg", ".hidden.png"
        stem, ext = base, ""
    clean = is_valid_product_id(stem) and raw == base and ext == ext.lower() and (ext == "" or re.fullmatch(r"\.[a-z0-9]{1,5}", ext))
    if clean:
        return stem
    # The hash covers the name exactly as given, so names that differ only in surrounding
    # spaces are still different products.
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    slug = _slug(stem)[: _MAX - _SUFFIX].strip("-_")
    return f"{slug}-{digest}" if slug else f"p-{digest}"
