"""Each stage's step: its input files in, its output files and metadata out.

A step is built from the stage's parameters (and its resolved backend) and returns a
`stages.Compute`: a pure function of the product's files and its `StageContext`. Steps
return images undecoded; the runner encodes them (`encoding.encode_files`), and a caller
that chains steps in memory hands images on as they are. These are the very functions the
Dagster assets, the command line and the benchmarks run, so all produce the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from adgen_dagster.encoding import decode_png, encode_json, preview_markdown
from adgen_dagster.imaging import ads, analyze, backdrop, composite as composite_core, decode, retouch, segment
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.decode import decode_upload
from adgen_dagster.imaging.details import ProductDetails, parse_details
from adgen_dagster.imaging.palette import product_colours
from adgen_dagster.imaging.segment_gate import check_cutout

if TYPE_CHECKING:
    from adgen_dagster.backends import Backend
    from adgen_dagster.stages import Compute, Files, StageContext


def product_image(params: decode.DecodeParams) -> Compute:
    """Given files `upload` and `sidecar` (b"" when absent); the context names the file in errors."""

    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        img = decode_upload(files["upload"], ctx.file_name, params)
        sidecar = files.get("sidecar") or None
        details = parse_details(sidecar, source=ctx.file_name + ".json")
        return (
            {"product_image.png": img, "details.json": encode_json(details.model_dump(mode="json"))},
            {"width": img.width, "height": img.height, "mode": img.mode, "upload_bytes": len(files["upload"]),
             "sidecar": "yes" if sidecar else "no (defaults)", "headline": details.display_headline,
             "preview": preview_markdown(img)},
        )

    return compute


# What a segmenter decided, shown with each cut-out (see models/auto_segment.py, imaging/segment_gate.py).
CUTOUT_STATS = ("path", "why", "detail_shot", "gate", "saliency_peak", "uncertain_ratio", "bg_noise", "bg_border_fit")


def segmentation(params: segment.SegmentParams, segmenter: Backend) -> Compute:
    """A segmenter that batches (`batch_size` > 1: BiRefNet) gives the compute a `.batch` too: many products per pass.

    Every cut-out goes through the quality gate (`segment_gate`): one that cannot be
    trusted raises `CutoutRejected` naming the product's file, and only its product fails.
    """

    def outputs(cut: segment.Cutout, ctx: StageContext) -> tuple[Files, dict]:
        check_cutout(cut, params, ctx.file_name)
        return (
            {"nobg_image.png": cut.rgba, "mask.png": cut.mask},
            {"width": cut.rgba.width, "height": cut.rgba.height,
             "coverage": round(float(np.asarray(cut.mask, dtype=np.float32).mean() / 255.0), 5),
             "preview": preview_markdown(cut.rgba), "mask_preview": preview_markdown(cut.mask),
             **{k: cut.stats[k] for k in CUTOUT_STATS if k in cut.stats},
             **segmenter.last_metadata()},
        )

    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        return outputs(segmenter(decode_png(files["product_image.png"]), params), ctx)

    if segmenter.batch_size > 1:  # a model that takes several images per pass (BiRefNet)
        def compute_batch(many: list[tuple[Files, StageContext]]) -> list[tuple[Files, dict]]:
            cuts = segmenter.batch([decode_png(f["product_image.png"]) for f, _ in many], params)
            return [outputs(c, ctx) for c, (_, ctx) in zip(cuts, many)]

        compute.batch = compute_batch  # type: ignore[attr-defined]
        compute.batch_size = segmenter.batch_size  # type: ignore[attr-defined]
    return compute


def background(params: backdrop.BackdropParams, render: Backend) -> Compute:
    """The default seed derives from the product id (so the stage is keyed by it)."""

    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        details = ProductDetails.model_validate_json(files["details.json"])
        colours = product_colours(decode_png(files["product_image.png"]))
        seed = details.seed_for(ctx.product_id)
        img = render(details, colours, params, seed=seed)
        return (
            {"background.png": img},
            {"width": img.width, "height": img.height, "seed": seed, "product_colours": ", ".join(colours),
             "style": details.style or "(none)", "preview": preview_markdown(img), **render.last_metadata()},
        )

    return compute


def composite(params: composite_core.CompositeParams) -> Compute:
    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        placed = composite_core.composite(decode_png(files["nobg_image.png"]), decode_png(files["background.png"]), params)
        return (
            {"composite.png": placed.image, "composite_mask.png": placed.mask},
            {"width": placed.image.width, "height": placed.image.height, "placement": params.placement,
             "product_box": list(placed.box), "scale": round(placed.scale, 4), "preview": preview_markdown(placed.image)},
        )

    return compute


def retouched(params: retouch.RetouchParams) -> Compute:
    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        img = retouch.retouch(decode_png(files["composite.png"]), decode_png(files["composite_mask.png"]),
                              decode_png(files["background.png"]), params)
        return (
            {"retouched.png": img},
            {"width": img.width, "height": img.height, "brightness": params.brightness, "contrast": params.contrast,
             "preview": preview_markdown(img)},
        )

    return compute


def analysis(params: analyze.AnalysisParams, analyzer: Backend) -> Compute:
    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        result: Analysis = analyzer(decode_png(files["retouched.png"]), decode_png(files["composite_mask.png"]), params)
        doc = result.model_dump(mode="json")
        return (
            {"analysis.json": encode_json(doc)},
            {"tone": result.tone, "mood": ", ".join(result.mood), "text_zone": result.text_zone.position,
             "text_colour": result.text_colour, "text_contrast": round(result.text_contrast, 2),
             "main_colours": ", ".join(c.hex for c in result.main_colours), "analysis": doc,
             **analyzer.last_metadata()},
        )

    return compute


def ad_creatives(params: ads.AdParams) -> Compute:
    def compute(files: Files, ctx: StageContext) -> tuple[Files, dict]:
        creatives = ads.render_ads(
            decode_png(files["retouched.png"]),
            Analysis.model_validate_json(files["analysis.json"]),
            ProductDetails.model_validate_json(files["details.json"]),
            params,
        )
        out: Files = {}
        for c in creatives:
            out[f"ads/{c.size_name}.png"] = c.png
            out[f"ads/{c.size_name}.html"] = c.html.encode("utf-8")
        square = next((c for c in creatives if c.png.width == c.png.height), creatives[0])
        return out, {
            "sizes": ", ".join(c.size_name for c in creatives),
            "contrast": {c.size_name: round(c.contrast, 2) for c in creatives},
            "preview": preview_markdown(square.png, 256),
        }

    return compute
