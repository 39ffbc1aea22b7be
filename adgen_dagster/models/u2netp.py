"""U²-Net-p, the small salient-object model shipped in the repo, run on the CPU with OpenCV's DNN.

4.6 MB of weights (`data/u2netp.onnx`, Apache-2.0, see `data/NOTICE-u2netp.txt`), no
torch, no download: this is what lets the default install cut out a product on a table,
a shelf or in a hand, where the classical background model has nothing plain to fit.
OpenCV (already a dependency) gives the same output as onnxruntime within 2e-6 and is
as fast on this model, so no extra runtime is installed.

The file's sha256 is checked on every load: a truncated or replaced file is one clear
error, never a silently different cut-out. The network is loaded once per process (and
per thread: an OpenCV `Net` is not safe to share between threads).

`predict` is rembg's pre-processing (LANCZOS to 320 x 320, divide by the image's max,
ImageNet mean/std) and returns the fused map (d0) min-max normalised to [0, 1] at
320 x 320, float32; `rembg_mask` adds rembg's post-processing (8-bit, LANCZOS back to the
photo's size) and is the raw baseline the benchmark compares against.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging import saliency
from adgen_dagster.imaging.backend import OnCpuSegmenter
from adgen_dagster.imaging.segment import VERSION, Cutout, SegmentParams, cutout_with

MODEL_PATH = Path(__file__).resolve().parent / "data" / "u2netp.onnx"
MODEL_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
INPUT_SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_local = threading.local()


class U2NetError(RuntimeError):
    """The shipped model cannot be used (missing, damaged or unreadable): one message, what to do."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_net(path: Path = MODEL_PATH, sha256: str = MODEL_SHA256) -> cv2.dnn.Net:
    """The network from `path` after checking its sha256 (raises U2NetError on any mismatch)."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise U2NetError(f"the shipped cut-out model {path} cannot be read ({exc.strerror or exc}); reinstall "
                         f"adgen-dagster, or set ADGEN_SEGMENTER=classical") from None
    if digest != sha256:
        raise U2NetError(f"the shipped cut-out model {path} is damaged: sha256 {digest[:16]}... is not the expected "
                         f"{sha256[:16]}...; reinstall adgen-dagster (git checkout the file), or set "
                         f"ADGEN_SEGMENTER=classical")
    return cv2.dnn.readNetFromONNX(str(path))


def net() -> cv2.dnn.Net:
    """This thread's network, loaded (and checked) on first use."""
    n = getattr(_local, "net", None)
    if n is None:
        n = _local.net = load_net()
    return n


def preprocess(rgb: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """rembg's input: LANCZOS to 320 x 320 (or `size`), divided by the image max, ImageNet mean/std, NCHW float32."""
    im = np.asarray(rgb.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    im = im / max(float(im.max()), 1e-6)
    return np.ascontiguousarray(((im - MEAN) / STD).transpose(2, 0, 1)[None])


def predict(rgb: Image.Image) -> np.ndarray:
    """The fused saliency map of one photo at 320 x 320, min-max normalised to [0, 1] (as rembg does)."""
    return _normalised(raw_map(rgb))


def rembg_mask(rgb: Image.Image) -> np.ndarray:
    """rembg's whole `u2netp` path (the raw baseline): 8-bit map, LANCZOS back to the photo's size; HxW in [0, 1]."""
    m = Image.fromarray((predict(rgb) * 255).astype(np.uint8), mode="L").resize(rgb.size, Image.Resampling.LANCZOS)
    return np.asarray(m, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------------------
# The cut-out: maps -> full-resolution alpha (imaging.saliency) -> foreground colours
# --------------------------------------------------------------------------------------


def raw_map(rgb: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The fused map at 320 x 320 (or `size`) *before* min-max normalisation: its peak says
    how much anything stands out at all."""
    n = net()
    n.setInput(preprocess(rgb, size))
    return n.forward()[0, 0].astype(np.float32)


def _normalised(raw: np.ndarray) -> np.ndarray:
    lo, hi = float(raw.min()), float(raw.max())
    return (raw - lo) / max(hi - lo, 1e-12)  # rembg's min-max normalisation


def neural_alpha(rgb8: np.ndarray, p) -> tuple[np.ndarray, dict]:
    """Alpha (float32 HxW) of the product in an RGB photo, and what was decided on the way."""
    t0 = time.perf_counter()
    H, W = rgb8.shape[:2]
    photo = Image.fromarray(rgb8)
    raw = raw_map(photo)
    peak = float(raw.max())
    stats: dict = {"saliency_peak": round(peak, 4)}
    timings = {"model_ms": (time.perf_counter() - t0) * 1000}
    if saliency.is_detail_shot(peak, p.detail_peak):
        stats.update(detail_shot=True, uncertain_ratio=0.0, timings_ms=_rounded(timings))
        return np.ones((H, W), np.float32), stats
    m = _normalised(raw)
    full = saliency.upsample(m, W, H)
    alpha = saliency.to_alpha(full, p.edge_gain, p.min_component)
    unsure = saliency.uncertain_ratio(m)
    if unsure > p.second_view_uncertain:
        t = time.perf_counter()
        coarse = saliency.upsample(_normalised(raw_map(photo, p.second_view_size)), W, H)
        other = saliency.to_alpha(coarse, p.edge_gain, p.min_component)
        agree = saliency.iou(alpha, other)
        stats["second_view"] = "agrees"
        if agree < p.second_view_agreement:
            grey = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
            mine, theirs = saliency.edge_alignment(grey, alpha), saliency.edge_alignment(grey, other)
            stats["edge_alignment"] = [round(mine, 3), round(theirs, 3)]
            if theirs > mine:
                full, alpha, stats["second_view"] = coarse, other, "used"
            else:
                stats["second_view"] = "kept the full view"
        timings["second_view_ms"] = (time.perf_counter() - t) * 1000
    stats["uncertain_ratio"] = round(saliency.uncertain_ratio(full), 4)
    stats["timings_ms"] = _rounded(timings)
    return alpha, stats


def cutout_u2netp(image: Image.Image, params: SegmentParams | None = None) -> Cutout:
    """The product cut out by U²-Net-p at full resolution (an upload's own alpha is kept, as
    with every segmenter)."""
    p = params or SegmentParams()

    def segment(rgb8: np.ndarray) -> tuple[np.ndarray, dict]:
        alpha, stats = neural_alpha(rgb8, p)
        return alpha, {"version": VERSION, "source": "segmented", "path": "u2netp", **stats}

    return cutout_with(image, segment)


class U2NetpSegmenter(OnCpuSegmenter):
    """The `u2netp` segmenter (`imaging.backend.Segmenter`): `cutout_u2netp`."""

    name = "u2netp"
    description = "CPU, shipped model (4.6 MB, OpenCV DNN): U2-Net-p with a crop pass, refined at full size"

    def __call__(self, image: Image.Image, params: SegmentParams | None = None) -> Cutout:
        return cutout_u2netp(image, params)


def _rounded(timings: dict) -> dict:
    return {k: round(v, 1) for k, v in timings.items()}
