"""Dominant colours of a set of pixels (k-means in Lab), and of a photo's product.

The background stage needs the product's colours before any mask exists (it runs in
parallel with segmentation), so `product_colours` separates product from backdrop by
distance to the photo's border colour, which is good enough for choosing a tint.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging.colour import lab_to_srgb, rgb_to_hex, srgb_to_lab


def dominant_colours(
    pixels: np.ndarray,
    k: int = 5,
    seed: int = 0,
    merge_delta_e: float = 0.0,
    min_share: float = 0.0,
    max_colours: int = 8,
    max_samples: int = 20000,
) -> list[tuple[str, float]]:
    """(hex, share) of `pixels` (N x 3 uint8 sRGB), largest share first; deterministic.

    k-means in Lab, then clusters closer than `merge_delta_e` are merged (biggest first)
    and clusters under `min_share` dropped; shares are renormalised to sum to 1.
    """
    px = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    if len(px) == 0:
        return []
    if len(px) > max_samples:
        px = px[np.linspace(0, len(px) - 1, max_samples).astype(np.int64)]
    lab = srgb_to_lab(px.astype(np.float32) / 255.0).astype(np.float32)
    k = max(1, min(k, len(lab)))
    if k == 1:
        centres, shares = lab.mean(axis=0, keepdims=True), np.array([1.0])
    else:
        cv2.setRNGSeed(seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.2)
        _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
        shares = np.bincount(labels.ravel(), minlength=k).astype(np.float64) / len(lab)

    kept_c: list[np.ndarray] = []
    kept_s: list[float] = []
    for i in np.argsort(-shares, kind="stable"):
        if shares[i] <= 0:
            continue
        c = centres[i].astype(np.float64)
        for j, kc in enumerate(kept_c):
            if np.linalg.norm(kc - c) < merge_delta_e:
                tot = kept_s[j] + shares[i]
                kept_c[j] = (kc * kept_s[j] + c * shares[i]) / tot
                kept_s[j] = tot
                break
        else:
            kept_c.append(c)
            kept_s.append(float(shares[i]))

    items = [(s, c) for s, c in zip(kept_s, kept_c) if s >= min_share] or [(kept_s[0], kept_c[0])]
    items = sorted(items, key=lambda t: -t[0])[:max_colours]
    total = sum(s for s, _ in items)
    merged: dict[str, float] = {}  # two clusters can round to one hex: merge those too
    for s, c in items:
        hx = rgb_to_hex(lab_to_srgb(c.astype(np.float32)) * 255.0)
        merged[hx] = merged.get(hx, 0.0) + s / total
    return sorted(merged.items(), key=lambda t: -t[1])


def product_colours(image: Image.Image, k: int = 3, work_size: int = 128) -> list[str]:
    """The product's main colours, most frequent first, from a photo without a mask."""
    im = image.convert("RGBA")
    im.thumbnail((work_size, work_size), Image.Resampling.BILINEAR)
    arr = np.asarray(im)
    rgb, alpha = arr[..., :3], arr[..., 3]
    if alpha.min() < 250:  # transparent upload: the alpha is the product
        fg = rgb[alpha > 127]
    else:
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
        bg = np.median(border, axis=0)
        dist = np.linalg.norm(rgb.astype(np.float32) - bg, axis=-1)
        fg = rgb[dist > 40]
        if len(fg) < 0.01 * dist.size:  # nothing stands out: use the whole photo
            fg = rgb.reshape(-1, 3)
    return [h for h, _ in dominant_colours(fg, k)]
