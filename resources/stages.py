"""Each stage as bytes in -> bytes out, with the cache around it.

This is the one place that decides which product file a stage reads and writes, and
`resources.io` how each is encoded, so the Dagster assets, the command line and the
benchmarks produce byte-identical outputs. A stage returns its images undecoded and
`run_stage` encodes them (several at once); a caller that chains stages in memory
(`adgen run`) hands the images on as they are and encodes them beside the next stage. `run_stage` wraps a stage's `compute` with the content-addressed
cache: inputs are read from `products/<pid>/`, their digests and the stage's settings
form the key, a hit skips the work entirely (no decode, no model), and the outputs are
written back under `products/<pid>/` either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from pydantic import BaseModel

from adgen_dagster.backends import Backend, get_analyzer, get_background, get_segmenter
from adgen_dagster.imaging import ads, analyze, backdrop, composite, decode, retouch, segment
from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.decode import decode_upload
from adgen_dagster.imaging.details import MAX_DETAILS_BYTES, DetailsError, ProductDetails, parse_details
from adgen_dagster.imaging.segment_gate import check_cutout
from adgen_dagster.imaging.palette import product_colours
from resources.cache import ResultCache, cache_key, sha256_hex
from resources.io import FileValue, decode_png, encode_files, encode_json, encoder_pool, preview_markdown
from resources.object_store import ObjectStore, TooLarge
from resources.products import product_key

Files = dict[str, FileValue]  # product file name -> bytes, or an image not yet encoded (resources.io)
Compute = Callable[[Files], tuple[Files, dict[str, Any]]]

# Metadata a computation measures about itself; not repeated when its result is reused.
MEASURED_NOW = frozenset({"load_ms", "inference_ms", "lock_wait_ms", "total_ms", "first_call_compiled"})

CONTENT_TYPES = {".png": "image/png", ".json": "application/json", ".html": "text/html; charset=utf-8"}


@dataclass
class StageResult:
    stage: str
    key: str
    cache: str  # "hit", "miss" or "off"
    outputs: Files  # what this call wrote (on a hit, only outputs that had changed)
    metadata: dict[str, Any]
    timings_ms: dict[str, float] = field(default_factory=dict)
    settings_key: str = ""  # digest of stage, version, backend, model id and settings (no inputs)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def run_stage(
    store: ObjectStore,
    cache: ResultCache,
    pid: str,
    stage: str,
    version: str,
    params: BaseModel,
    inputs: Files,
    compute: Compute,
    backend: str = "",
    backend_params: BaseModel | None = None,
    input_files: tuple[str, ...] = (),
) -> StageResult:
    """Look up or compute one stage for one product and write its outputs.

    `inputs` are given bytes (an upload, a product id); `input_files` are read from
    `products/<pid>/` only when needed: for the key, the digest the store recorded when it
    wrote them is enough, so a cache hit reads no image. On a hit, outputs whose stored
    digest already matches are not written again.
    """
    t = time.perf_counter()
    key, files = stage_key(store, cache, pid, stage, version, params, inputs, backend, backend_params, input_files)
    timings = {"cache_lookup": _ms(t)}

    t = time.perf_counter()
    entry = cache.manifest(stage, key)
    written: Files = {}
    if entry is not None:
        for name, digest in entry.digests.items():
            if store.digest(product_key(pid, name)) == digest:
                continue  # already the latest output
            data = cache.blob(stage, digest)
            if data is None:  # damaged entry: recompute below
                entry = None
                break
            written[name] = data
    if entry is not None:
        # The entry's metadata describes the run that computed it; what that run measured
        # (load and inference times) did not happen now.
        metadata = {k: v for k, v in entry.metadata.items() if k not in MEASURED_NOW}
        status = "hit"
    else:
        for name in input_files:
            if name not in files:
                files[name] = store.get(product_key(pid, name))
        t = time.perf_counter()
        written, metadata = compute(files)
        timings["compute"] = _ms(t)
        t = time.perf_counter()
        written = encode_files(written)
        timings["encode"] = _ms(t)
        status = "miss" if cache.enabled else "off"
        if not cache.put(stage, key, written, metadata) and cache.enabled:
            written, metadata = _committed(cache, stage, key, written, metadata)
    t = time.perf_counter()
    put_all(store, {product_key(pid, name): data for name, data in written.items()})
    timings["write"] = _ms(t)
    return StageResult(stage, key, status, written, metadata, timings,
                       settings_key(stage, version, params, backend, backend_params))


def put_all(store: ObjectStore, objects: Mapping[str, bytes]) -> None:
    """Write several objects at once (their disk syncs or S3 round trips overlap); errors propagate."""
    def put(item: tuple[str, bytes]) -> None:
        key, data = item
        store.put(key, data, CONTENT_TYPES.get(key[key.rfind("."):]))

    if len(objects) > 1:
        list(encoder_pool().map(put, objects.items()))
    else:
        for item in objects.items():
            put(item)


def _committed(cache: ResultCache, stage: str, key: str, written: Files, metadata: dict) -> tuple[Files, dict]:
    """Another run committed this key first: write its bytes, not ours.

    A GPU model (FLUX) need not give the same bytes twice; the product's files must agree
    with the cache entry that later runs will reuse.
    """
    entry = cache.manifest(stage, key)
    if entry is None:
        return written, metadata
    theirs: Files = {}
    for name, digest in entry.digests.items():
        data = cache.blob(stage, digest)
        if data is None:
            return written, metadata
        theirs[name] = data
    return theirs, entry.metadata


def stage_key(
    store: ObjectStore, cache: ResultCache, pid: str, stage: str, version: str, params: BaseModel, inputs: Files,
    backend: str = "", backend_params: BaseModel | None = None, input_files: tuple[str, ...] = (),
) -> tuple[str, Files]:
    """(cache key, the files read to make it): inputs' digests come from the store when it has them."""
    files = dict(inputs)
    digests = {n: sha256_hex(b) for n, b in inputs.items()}
    for name in input_files:
        digest = store.digest(product_key(pid, name)) if cache.enabled else None
        if digest is None:
            files[name] = store.get(product_key(pid, name))
            digest = sha256_hex(files[name])
        digests[name] = digest
    return cache_key(stage, version, backend, _model_id(backend_params), _key_params(params, backend_params), digests), files


def _model_id(backend_params: BaseModel | None) -> str:
    """The model setting; for a hub id, with the snapshot in the local cache, so new weights are new results."""
    if backend_params is None:
        return ""
    from adgen_dagster.models.weights import snapshot_name

    ref = str(getattr(backend_params, "model", ""))
    snap = snapshot_name(ref)
    return f"{ref}@{snap}" if snap else ref


def _key_params(params: BaseModel, backend_params: BaseModel | None) -> dict:
    """The stage's settings, plus a neural backend's own (minus those that only change speed)."""
    doc = params.model_dump(mode="json")
    if backend_params is not None:
        doc["backend_params"] = (backend_params.key_params() if hasattr(backend_params, "key_params")
                                 else backend_params.model_dump(mode="json"))
    return doc


def settings_key(stage: str, version: str, params: BaseModel, backend: str = "",
                 backend_params: BaseModel | None = None) -> str:
    """What decides a stage's output besides its inputs; a change makes earlier outputs stale."""
    return cache_key(stage, version, backend, _model_id(backend_params), _key_params(params, backend_params), {})[:16]


# --- the stages: pure functions of their input files and settings -------------------------


def product_image(params: decode.DecodeParams, file_name: str) -> Compute:
    """inputs: upload, sidecar (b"" when absent). `file_name` only names the file in errors."""

    def compute(files: Files) -> tuple[Files, dict]:
        img = decode_upload(files["upload"], file_name, params)
        sidecar = files.get("sidecar") or None
        details = parse_details(sidecar, source=file_name + ".json")
        return (
            {"product_image.png": img, "details.json": encode_json(details.model_dump(mode="json"))},
            {"width": img.width, "height": img.height, "mode": img.mode, "upload_bytes": len(files["upload"]),
             "sidecar": "yes" if sidecar else "no (defaults)", "headline": details.display_headline,
             "preview": preview_markdown(img)},
        )

    return compute


def _backend(kind_get: Callable[[str], Backend], backend: "str | Backend") -> Backend:
    return backend if isinstance(backend, Backend) else kind_get(backend)


# What a segmenter decided, shown with each cut-out (see models/auto_segment.py, imaging/segment_gate.py).
CUTOUT_STATS = ("path", "why", "detail_shot", "gate", "saliency_peak", "uncertain_ratio", "bg_noise", "bg_border_fit")


def segmentation(params: segment.SegmentParams, backend: "str | Backend", file_name: str = "") -> Compute:
    """A segmenter that batches (`batch_size` > 1: BiRefNet) gives the compute a `.batch` too: many products per pass.

    Every cut-out goes through the quality gate (`segment_gate`): one that cannot be
    trusted raises `CutoutRejected` naming `file_name`, and only its product fails.
    """
    segmenter = _backend(get_segmenter, backend)

    def outputs(cut: segment.Cutout) -> tuple[Files, dict]:
        check_cutout(cut, params, file_name)
        return (
            {"nobg_image.png": cut.rgba, "mask.png": cut.mask},
            {"width": cut.rgba.width, "height": cut.rgba.height,
             "coverage": round(float(np.asarray(cut.mask, dtype=np.float32).mean() / 255.0), 5),
             "preview": preview_markdown(cut.rgba), "mask_preview": preview_markdown(cut.mask),
             **{k: cut.stats[k] for k in CUTOUT_STATS if k in cut.stats},
             **segmenter.last_metadata()},
        )

    def compute(files: Files) -> tuple[Files, dict]:
        return outputs(segmenter(decode_png(files["product_image.png"]), params))

    if segmenter.batch_size > 1:  # a model that takes several images per pass (BiRefNet)
        def compute_batch(many: list[Files]) -> list[tuple[Files, dict]]:
            return [outputs(c) for c in segmenter.batch([decode_png(f["product_image.png"]) for f in many], params)]

        compute.batch = compute_batch  # type: ignore[attr-defined]
        compute.batch_size = segmenter.batch_size  # type: ignore[attr-defined]
    return compute


def background(params: backdrop.BackdropParams, backend: "str | Backend") -> Compute:
    """inputs also hold `product_id`: the default seed derives from it."""
    render = _backend(get_background, backend)

    def compute(files: Files) -> tuple[Files, dict]:
        details = ProductDetails.model_validate_json(files["details.json"])
        colours = product_colours(decode_png(files["product_image.png"]))
        seed = details.seed_for(files["product_id"].decode("utf-8"))
        img = render(details, colours, params, seed=seed)
        return (
            {"background.png": img},
            {"width": img.width, "height": img.height, "seed": seed, "product_colours": ", ".join(colours),
             "style": details.style or "(none)", "preview": preview_markdown(img), **render.last_metadata()},
        )

    return compute


def composite_stage(params: composite.CompositeParams) -> Compute:
    def compute(files: Files) -> tuple[Files, dict]:
        placed = composite.composite(decode_png(files["nobg_image.png"]), decode_png(files["background.png"]), params)
        return (
            {"composite.png": placed.image, "composite_mask.png": placed.mask},
            {"width": placed.image.width, "height": placed.image.height, "placement": params.placement,
             "product_box": list(placed.box), "scale": round(placed.scale, 4), "preview": preview_markdown(placed.image)},
        )

    return compute


def retouch_stage(params: retouch.RetouchParams) -> Compute:
    def compute(files: Files) -> tuple[Files, dict]:
        img = retouch.retouch(decode_png(files["composite.png"]), decode_png(files["composite_mask.png"]),
                              decode_png(files["background.png"]), params)
        return (
            {"retouched.png": img},
            {"width": img.width, "height": img.height, "brightness": params.brightness, "contrast": params.contrast,
             "preview": preview_markdown(img)},
        )

    return compute


def analysis(params: analyze.AnalysisParams, backend: "str | Backend") -> Compute:
    analyzer = _backend(get_analyzer, backend)

    def compute(files: Files) -> tuple[Files, dict]:
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
    def compute(files: Files) -> tuple[Files, dict]:
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


def product_inputs(store: ObjectStore, upload_key: str, max_bytes: int) -> Files:
    """The product_image stage's inputs: the upload and its optional sidecar, each read only if it is small enough.

    A file over its limit fails with the sentence `decode_upload` / `parse_details` would give.
    """
    name = upload_key.removeprefix("uploads/")
    try:
        upload = store.get(upload_key, max_bytes)
    except TooLarge as exc:
        raise decode.BadImageError(f"{name}: the file is {exc.size / 1e6:.0f} MB, larger than the "
                                   f"{max_bytes / 1e6:.0f} MB limit") from None
    try:
        sidecar = store.get_or_none(upload_key + ".json", MAX_DETAILS_BYTES) or b""
    except TooLarge as exc:
        raise DetailsError(f"{name}.json: {exc.size / 1e6:.1f} MB of details, larger than the "
                           f"{MAX_DETAILS_BYTES / 1e6:.0f} MB limit") from None
    return {"upload": upload, "sidecar": sidecar}


STAGE_VERSIONS: Mapping[str, str] = {
    "product_image": decode.VERSION,
    "segmentation": segment.VERSION,
    "background": backdrop.VERSION,
    "composite": composite.VERSION,
    "retouched": retouch.VERSION,
    "analysis": analyze.VERSION,
    "ad_creatives": ads.VERSION,
}
STAGE_INPUTS: Mapping[str, tuple[str, ...]] = {
    "segmentation": ("product_image.png",),
    "background": ("product_image.png", "details.json"),
    "composite": ("nobg_image.png", "background.png"),
    "retouched": ("composite.png", "composite_mask.png", "background.png"),
    "analysis": ("retouched.png", "composite_mask.png"),
    "ad_creatives": ("retouched.png", "analysis.json", "details.json"),
}
