"""Growing a photo's studio background into the extra area of a wider or taller canvas.

Each outer band of the photo is reduced to a smooth per-column (or per-row) profile and its
slope, continued outwards with a damped slope (so a sweep gradient keeps going and levels
off instead of stopping dead), given the photo's own grain, and the photo's outer rows are
feathered towards the same model, so the join has no seam.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def _smooth_1d(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (n, 3) profile along n, reflecting at the ends."""
    return cv2.GaussianBlur(a[None].astype(np.float32), (0, 0), sigmaX=max(0.5, sigma), sigmaY=0.01,
                            borderType=cv2.BORDER_REFLECT)[0]


def _grow(strip: np.ndarray, n: int, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grow the background outwards from one edge of the photo.

    `strip`: float32 (2k, w, 3), the photo's outer 2k rows ordered from the edge inwards.
    Returns (n new rows ordered from the edge outwards, replacement for strip's rows, feathered).
    """
    w = strip.shape[1]
    sig = max(4.0, w * 0.03)
    p0 = _smooth_1d(strip[:k].mean(axis=0), sig)  # smooth profile of the outer k rows
    p1 = _smooth_1d(strip[k : 2 * k].mean(axis=0), sig)
    slope = np.clip((p0 - p1) / k, -0.6, 0.6)  # levels per px, outwards
    edge = p0 + slope * (k - 1) / 2  # model value at the outermost row
    tau = max(float(k), 0.08 * w)
    d = np.arange(1, n + 1, dtype=np.float32)[:, None, None]
    # continue the (broadly smoothed) slope, damped: the drift levels off at slope * tau,
    # at most 16 levels, so a sweep keeps going a little without turning local highlights
    # into beams ...
    drift = np.clip(_smooth_1d(slope, 0.08 * w) * tau, -16, 16)
    ext = (edge + 0.5)[None] + (1 - np.exp(-d / tau)) * drift[None]  # +0.5: rounding for _u8
    # ... and blur more with distance, so whatever texture the edge has fades into a smooth field
    far = _smooth_1d(edge, max(sig, 0.15 * w)) - edge
    ext += (1 - np.exp(-d / (2 * tau))) * far[None]
    # grain: robust std of neighbour differences along the edge (blind to smooth gradients)
    diff = ((strip[:k, 1:] - strip[:k, :-1]) / np.sqrt(2)).reshape(-1, 3)
    grain = np.minimum(1.4826 * np.median(np.abs(diff), axis=0), 6.0).astype(np.float32)
    if float(grain.max()) > 0.3:
        ext += _noise(n, w, offset) * grain
    # feather: move the low frequencies of the photo's outer rows onto the model (keeps grain)
    i = np.arange(2 * k, dtype=np.float32)[:, None, None]
    kx = 2 * int(1.5 * sig) + 1
    low = cv2.stackBlur(np.ascontiguousarray(strip), (kx, 3))  # ~Gaussian(sig), O(1) per pixel
    inner = strip + (edge[None] - slope[None] * i - low) * (0.85 * (1 - i / (2 * k)) ** 2)
    return ext, inner


@lru_cache(maxsize=1)
def _noise_tile(t: int = 512) -> np.ndarray:
    tile = np.random.default_rng(12345).standard_normal((t, t, 1), dtype=np.float32)
    tile.setflags(write=False)
    return tile


def _noise(n: int, w: int, offset: int) -> np.ndarray:
    """(n, w, 1) unit Gaussian grain from a fixed 512 px tile (repeats are invisible at <= 6
    levels); `offset` shifts the tile so the two bands of a canvas differ."""
    tile = np.roll(_noise_tile(), offset, axis=(0, 1))
    t = tile.shape[0]
    return np.tile(tile, (-(-n // t), -(-w // t), 1))[:n, :w]


def to_u8(a: np.ndarray, rounded: bool = False) -> np.ndarray:
    """float -> uint8, in place on `a` (values already offset by +0.5 when `rounded`)."""
    if not rounded:
        a += 0.5
    return np.clip(a, 0, 255, out=a).astype(np.uint8)


def extend(arr: np.ndarray, W: int, H: int, ox: int, oy: int) -> np.ndarray:
    """Place `arr` (uint8 h x w x 3) at (ox, oy) on a W x H canvas and grow its background into
    the rest, along the one axis where there is room. Returns uint8 H x W x 3."""
    h, w, _ = arr.shape
    out = np.zeros((H, W, 3), np.uint8)
    out[oy : oy + h, ox : ox + w] = arr
    if h < H:
        o, a, before, after = out, arr, oy, H - oy - h
    elif w < W:  # the same along columns, through transposed views
        o, a, before, after = out.transpose(1, 0, 2), arr.transpose(1, 0, 2), ox, W - ox - w
    else:
        return out
    L = a.shape[0]
    if L < 16:  # too small to model (thumbnails, 1x1): replicate the edge
        o[:before] = a[:1]
        o[before + L :] = a[-1:]
        return out
    k = int(np.clip(L // 40, 2, 32))
    if before:
        ext, inner = _grow(a[: 2 * k].astype(np.float32), before, k, 0)
        o[:before] = to_u8(ext[::-1], True)
        o[before : before + 2 * k] = to_u8(inner)
    if after:
        ext, inner = _grow(a[::-1][: 2 * k].astype(np.float32), after, k, 211)
        o[before + L :] = to_u8(ext, True)
        o[before + L - 2 * k : before + L] = to_u8(inner[::-1])
    return out
