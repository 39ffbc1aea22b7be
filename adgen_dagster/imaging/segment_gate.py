"""The quality gate: a cut-out that cannot be trusted fails its product, readably.

Every later asset inherits the cut-out: a speck, the wrong object or a product chopped
by the frame would become a composite, a retouched image and an ad that nobody should
post. Such a cut-out fails at the segmentation step instead, with one line that names
the photo, says what is wrong and what to do. What is rejected:

- **nothing or a speck**: the cut-out covers less than `gate_min_coverage` of the photo;
- **low confidence**: the model was unsure about much of what it calls the product (many
  half-sure pixels per product pixel, `uncertain_ratio` in the segmenter's stats);
- **cut by the frame**: the product touches `gate_frame_sides` sides of the photo or more,
  yet covers less than `gate_fills_frame` of it. A product that fills most of the frame
  is a detail shot, which is kept (as is a photo in which nothing stands out at all: the
  neural segmenter then keeps the whole photo).

`bench/segment_quality.py` measures the gate on the development set: how many good
cut-outs it rejects and how many bad ones it lets through.
"""

from __future__ import annotations

import numpy as np

from adgen_dagster.imaging.segment import Cutout, SegmentParams

SIDES = ("top", "bottom", "left", "right")
ADVICE = ("photograph the product whole, on a plain surface, with some space around it; "
          "or set ADGEN_SEGMENTER=birefnet (GPU)")


class CutoutRejected(ValueError):
    """The cut-out cannot be trusted; the message names the photo and what to do."""


def frame_sides(alpha: np.ndarray, min_share: float = 0.05) -> list[str]:
    """The sides of the photo along which the product (alpha > 0.5) covers more than `min_share`."""
    hard = alpha > 0.5
    edges = (hard[0], hard[-1], hard[:, 0], hard[:, -1])
    return [side for side, edge in zip(SIDES, edges) if edge.size and edge.mean() > min_share]


def gate_reason(alpha: np.ndarray, stats: dict, p: SegmentParams) -> str:
    """Why this cut-out cannot be trusted, or "" when it can. `alpha`: float HxW in [0, 1]."""
    if stats.get("source") == "input_alpha":
        return ""  # the upload's own alpha is the user's decision
    coverage = float((alpha > 0.5).mean())
    if coverage < p.gate_min_coverage:
        what = "no product found" if coverage == 0 else f"only a speck ({coverage:.2%} of the photo) was found"
        return f"{what} to cut out"
    uncertain = stats.get("uncertain_ratio")
    if uncertain is not None and uncertain > p.gate_max_uncertain:
        return (f"the cut-out model is unsure where the product ends ({uncertain:.1f} half-sure pixels per product "
                f"pixel, limit {p.gate_max_uncertain:g})")
    sides = frame_sides(alpha)
    if len(sides) >= p.gate_frame_sides and coverage < p.gate_fills_frame:
        return (f"the product is cut off by the photo's {', '.join(sides)} edges (it covers {coverage:.0%} of the "
                f"photo: too little for a detail shot)")
    return ""


def check_cutout(cut: Cutout, p: SegmentParams, name: str = "") -> Cutout:
    """`cut`, with `stats["gate"]` set; raises CutoutRejected when it cannot be trusted and the
    gate is on (off: the reason is only recorded)."""
    alpha = np.asarray(cut.mask, dtype=np.float32) / 255.0
    reason = gate_reason(alpha, cut.stats, p)
    cut.stats["gate"] = reason or "ok"
    if reason and p.gate:
        where = f"{name}: " if name else ""
        raise CutoutRejected(f"{where}no trustworthy cut-out: {reason}; {ADVICE} "
                             f"(ADGEN_SEGMENT__GATE=false keeps such cut-outs)")
    return cut
