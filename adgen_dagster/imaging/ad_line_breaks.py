"""Where a line of ad text may break: words, CJK characters, kinsoku punctuation; greedy, balanced, ellipsized.

Widths come from a `measure(text) -> px` callable, so the same rules serve every font
and size the fitting tries (and the CSS page's lines match the PNG's).
"""

from __future__ import annotations

import unicodedata
from typing import Callable


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x31F0 <= o <= 0x31FF
        or 0x3400 <= o <= 0x4DBF  # CJK ext A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified
        or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F  # CJK punctuation
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
        or 0x20000 <= o <= 0x2FFFF
    )


_NO_LINE_START = set(",.!?:;)]}%、。，．！？：；）］｝」』】〉》〕’”…・ー")
_NO_LINE_END = set("([{「『【〈《〔‘“")
_GLUE_TOKENS = set("—–-·|/&:;,.!?…)]}")

Unit = tuple[str, str]  # (separator before it: "" | " " | "\n", text)


def break_units(text: str) -> list[Unit]:
    """Break opportunities: between words, and between CJK characters; never before closing
    punctuation or after opening punctuation; a lone dash/ampersand stays with the word before."""
    units: list[Unit] = []
    for pi, para in enumerate(text.split("\n")):
        for wi, word in enumerate(para.split(" ")):
            if not word:
                continue
            sep = ("\n" if pi and not wi else " ") if units else ""
            if units and sep == " " and all(c in _GLUE_TOKENS for c in word):
                units[-1] = (units[-1][0], units[-1][1] + " " + word)
                continue
            pieces: list[str] = []
            for ch in word:
                if pieces and (
                    not (_is_cjk(ch) or _is_cjk(pieces[-1][-1]))
                    or ch in _NO_LINE_START
                    or pieces[-1][-1] in _NO_LINE_END
                ):
                    pieces[-1] += ch
                else:
                    pieces.append(ch)
            units.append((sep, pieces[0]))
            units.extend(("", p) for p in pieces[1:])
    return units


def graphemes(s: str) -> list[str]:
    out: list[str] = []
    for ch in s:
        if out and unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def wrap_units(units: list[Unit], width: float, measure: Callable[[str], float], allow_break: bool) -> list[str] | None:
    """Greedy wrap; None when a unit is wider than `width` and breaking it is not allowed.

    Line widths are summed from unit widths (kerning across a space is negligible); the
    caller checks the real widths of the lines it keeps."""
    space = measure(" ")
    lines: list[str] = []
    cur, cur_w = "", 0.0
    for sep, t in units:
        if sep == "\n" and cur:
            lines.append(cur)
            cur, cur_w = "", 0.0
        tw = measure(t)
        if cur:
            add = (space if sep == " " else 0.0) + tw
            if cur_w + add <= width:
                cur, cur_w = cur + (" " if sep == " " else "") + t, cur_w + add
                continue
            lines.append(cur)
            cur, cur_w = "", 0.0
        if tw <= width:
            cur, cur_w = t, tw
            continue
        if not allow_break:
            return None
        for g in graphemes(t):
            gw = measure(g)
            if cur and cur_w + gw > width:
                lines.append(cur)
                cur, cur_w = g, gw
            else:
                cur, cur_w = cur + g, cur_w + gw
    if cur:
        lines.append(cur)
    return lines


def balance_lines(units: list[Unit], width: float, measure, allow_break: bool, lines: list[str]) -> list[str]:
    """Narrowest wrap with the same number of lines (so the last line is not a lone word)."""
    n = len(lines)
    if n < 2 or allow_break:
        return lines
    lo, hi = max(1.0, width / n * 0.8), float(width)
    best = lines
    for _ in range(12):
        mid = (lo + hi) / 2
        cand = wrap_units(units, mid, measure, False)
        if cand is not None and len(cand) <= n:
            best, hi = cand, mid
        else:
            lo = mid
        if hi - lo < 2:
            break
    return best


def ellipsize_lines(lines: list[str], n: int, width: float, measure) -> list[str]:
    """The first n lines, the last ending in "…" (cut back to fit): CSS `line-clamp`'s rule."""
    if len(lines) <= n:
        return lines
    gs = graphemes(lines[n - 1])
    while gs and measure("".join(gs).rstrip() + "…") > width:
        gs.pop()
    return lines[: n - 1] + ["".join(gs).rstrip() + "…"]
