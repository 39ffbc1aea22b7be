"""Cut-out quality on the synthetic set (known alpha): ours vs two classical baselines.

    python bench/segment_quality.py [--size 256] [--speed]

For every synthetic case (tests/synthetic.py) it prints IoU (alpha > 0.5), mean
absolute alpha error over the whole image (alpha in [0, 1]) and time, for
`cutout_classical` and for plain `cv2.grabCut` initialised with a rectangle (5
iterations, the textbook use); `ratio` is ours / baseline (IoU: higher is better,
MAE: lower is better). A third baseline, a threshold on the colour distance to the
median border colour, is summarised at the end. `--speed` also times `cutout_classical`
on the sample photos resized to 1024 x 1024 (median of 5 runs each). Runs in well under
a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from adgen_dagster.imaging.segment import SegmentParams, cutout_classical  # noqa: E402
from tests.synthetic import iou, mae, make_synthetic_set  # noqa: E402


def grabcut_rect(image: Image.Image) -> np.ndarray:
    """Baseline: cv2.grabCut from a rectangle 3 % inside the frame, 5 iterations."""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    h, w = bgr.shape[:2]
    mx, my = max(1, int(0.03 * w)), max(1, int(0.03 * h))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, (mx, my, w - 2 * mx, h - 2 * my), bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def border_threshold(image: Image.Image, t: float = 12.0) -> np.ndarray:
    """Baseline: pixels farther than t (RGB levels, max channel) from the median border colour."""
    a = np.asarray(image.convert("RGB")).astype(np.float32)
    ref = np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]), axis=0)
    return (np.abs(a - ref).max(axis=2) > t).astype(np.float32)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="long side of the synthetic images (default 256)")
    ap.add_argument("--speed", action="store_true", help="also time the sample photos at 1024 x 1024")
    args = ap.parse_args()

    params = SegmentParams()
    cases = make_synthetic_set(size=args.size)
    cutout_classical(cases[0].image, params)  # warm-up (imports, first OpenCV calls)

    head = f"{'case':26s} {'size':>8s} | {'IoU ours':>8s} {'base':>7s} {'ratio':>6s} | {'MAE ours':>8s} {'base':>7s} {'ratio':>6s} | {'ms ours':>7s} {'base':>6s}"
    print("synthetic set: ours = cutout_classical, base = cv2.grabCut rect init (5 it)")
    print(head)
    print("-" * len(head))
    rows = []
    for c in cases:
        cut, t_ours = timed(cutout_classical, c.image, params)
        a_ours = np.asarray(cut.mask, dtype=np.float32) / 255.0
        a_base, t_base = timed(grabcut_rect, c.image)
        a_thr = border_threshold(c.image)
        r = dict(
            iou=iou(a_ours, c.alpha), mae=mae(a_ours, c.alpha), t=t_ours,
            iou_b=iou(a_base, c.alpha), mae_b=mae(a_base, c.alpha), t_b=t_base,
            iou_t=iou(a_thr, c.alpha), mae_t=mae(a_thr, c.alpha),
        )
        rows.append(r)
        size = f"{c.image.width}x{c.image.height}"
        print(
            f"{c.name:26s} {size:>8s} | {r['iou']:8.4f} {r['iou_b']:7.4f} {r['iou'] / max(r['iou_b'], 1e-9):6.2f} | "
            f"{r['mae']:8.4f} {r['mae_b']:7.4f} {r['mae'] / max(r['mae_b'], 1e-9):6.2f} | {r['t']:7.1f} {r['t_b']:6.1f}"
        )
    m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print("-" * len(head))
    print(
        f"{'MEAN':26s} {'':>8s} | {m['iou']:8.4f} {m['iou_b']:7.4f} {m['iou'] / m['iou_b']:6.2f} | "
        f"{m['mae']:8.4f} {m['mae_b']:7.4f} {m['mae'] / m['mae_b']:6.2f} | {m['t']:7.1f} {m['t_b']:6.1f}"
    )
    print(f"{'MIN IoU':26s} {'':>8s} | {min(r['iou'] for r in rows):8.4f} {min(r['iou_b'] for r in rows):7.4f}")
    print(f"\nbaseline 2, border-colour threshold: mean IoU {m['iou_t']:.4f}, mean MAE {m['mae_t']:.4f}")

    if args.speed:
        samples = sorted((ROOT / "adgen_dagster" / "samples" / "abo").glob("*.jpg"))
        print(f"\nspeed at 1024x1024 (median of 5), cv2 threads: {cv2.getNumThreads()}")
        for f in samples:
            img = Image.open(f).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
            times = [timed(cutout_classical, img, params)[1] for _ in range(5)]
            print(f"  {f.name:28s} median {statistics.median(times):6.0f} ms   min {min(times):6.0f} ms")


if __name__ == "__main__":
    main()
