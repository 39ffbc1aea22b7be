"""The one text cleaner: what comes from an upload's details is normalised the same way everywhere.

Details arrive from forms, spreadsheets and macOS file systems (decomposed Hangul), with
control characters and runs of spaces; the ad renderer and the FLUX prompt both need the
same normal form, so they share this function and differ only in what they keep.
"""

from __future__ import annotations

import unicodedata


def clean_text(text: str, *, keep_newlines: bool = True, drop: str = "Cc") -> str:
    """NFC, characters whose Unicode category starts with `drop` turned into spaces, runs of
    spaces collapsed, empty lines removed.

    `drop="Cc"` (control characters) is for text that is drawn: format characters such as
    the zero-width joiner shape emoji and scripts. `drop="C"` also removes those (a prompt).
    With `keep_newlines=False` the result is one line.
    """
    text = unicodedata.normalize("NFC", str(text or ""))
    text = "".join(" " if (unicodedata.category(c).startswith(drop) and not (keep_newlines and c == "\n")) else c
                   for c in text)
    lines = [" ".join(part.split()) for part in text.split("\n")]
    return "\n".join(line for line in lines if line)
