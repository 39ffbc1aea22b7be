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


def dominant_colours(pixels: np.ndarray, k: int = 5, max_samples: int = 20000) -> list[tuple[str, float]]:
    """(hex, share) of `pixels` (N x 3 uint8 sRGB), largest share first; deterministic."""
    px = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    if len(px) == 0:
        return []
    if len(px) > max_samples:
        px = px[np.linspace(0, len(px) - 1, max_samples).astype(np.int64)]
    lab = srgb_to_lab(px.astype(np.float32) / 255.0).astype(np.float32)
    k = max(1, min(k, len(np.unique(px, axis=0))))
    cv2.setRNGSeed(12345)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k).astype(np.float64)
    order = np.argsort(-counts, kind="stable")
    rgb = lab_to_srgb(centres) * 255.0
    return [(rgb_to_hex(rgb[i]), float(counts[i] / counts.sum())) for i in order if counts[i] > 0]


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
