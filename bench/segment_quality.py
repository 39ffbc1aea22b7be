"""Cut-out quality and speed on the development set (exact ground truth): the default vs baselines.

    python bench/segment_quality.py [--n 60] [--size 768] [--steps] [--speed]

The development set (`bench/devset`, generated from committed real photos and photographed
objects with known alpha, nothing downloaded) has products on real photographs of rooms,
floors, walls, plants and landscapes, pairs of products, studio sweeps and close-ups that
run off the frame. For each method it prints IoU (alpha > 0.5), MAE (mean absolute alpha
error over the whole image, alpha in [0, 1]) and seconds per image, overall and per kind,
and the ratio to raw u2netp:

- `classical`: the classical path (background model + GrabCut + band matting);
- `grabcut`: plain cv2.grabCut from a rectangle 5 % inside the border, 5 iterations;
- `u2netp (rembg)`: the shipped model with rembg's own pre/post-processing, the raw baseline;
- `u2netp`: our refined neural cut-out (detail shots, edges, specks, a second view when unsure);
- `auto` (the default): `u2netp`, or `classical` on a clean studio backdrop where it is better.

`--steps` adds the table of what each refinement step buys (each row adds one step to the
one above), and the candidates that were measured and not kept. The quality gate's verdicts
on the default's cut-outs are always counted: good cut-outs (IoU >= 0.8) it rejects and bad
ones (IoU < 0.5) it lets through. `--speed` runs `adgen cutout` end to end on 1024 px
photos (a studio sample and a real-photo scene), median of 5 fresh processes, with the
peak memory of the process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import REPO, print_table

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from adgen_dagster.imaging import saliency  # noqa: E402
from adgen_dagster.imaging.segment import SegmentParams, cutout_classical, estimate_foreground  # noqa: E402
from adgen_dagster.imaging.segment_gate import gate_reason  # noqa: E402
from adgen_dagster.models import u2netp  # noqa: E402
from adgen_dagster.models.auto_segment import cutout_auto  # noqa: E402
from bench.devset import make_devset  # noqa: E402
from tests.synthetic import iou, mae  # noqa: E402


P = SegmentParams()  # the defaults, for the candidates below


def grabcut_rect(image: Image.Image) -> np.ndarray:
    """Baseline: cv2.grabCut from a rectangle 5 % inside the frame, 5 iterations."""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    h, w = bgr.shape[:2]
    mx, my = max(1, int(0.05 * w)), max(1, int(0.05 * h))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, (mx, my, w - 2 * mx, h - 2 * my), bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def alpha_of(cut) -> np.ndarray:
    return np.asarray(cut.mask, dtype=np.float32) / 255.0


def neural(p: SegmentParams):
    return lambda img: u2netp.neural_alpha(np.asarray(img.convert("RGB")), p)[0]


# Candidates measured and not kept (see imaging/saliency.py): each replaces the default's map.
def crop_pass(img: Image.Image, margin: float = 0.1) -> np.ndarray:
    """The model run again on the product's box (10 % margin), its map replacing the box."""
    w, h = img.size
    m = u2netp.predict(img)
    full = saliency.upsample(m, w, h)
    ys, xs = np.nonzero(full > 0.5)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        my, mx = int((y1 - y0) * margin) + 2, int((x1 - x0) * margin) + 2
        y0, y1, x0, x1 = max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)
        crop = u2netp.predict(img.crop((x0, y0, x1, y1)))
        full = full.copy()
        full[y0:y1, x0:x1] = saliency.upsample(crop, x1 - x0, y1 - y0)
    return saliency.to_alpha(full, P.edge_gain, P.min_component)


def flip_tta(img: Image.Image) -> np.ndarray:
    """Average of the map and the map of the mirrored photo, then the default's steps."""
    w, h = img.size
    m = (u2netp.predict(img) + u2netp.predict(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[:, ::-1]) / 2
    return saliency.to_alpha(saliency.upsample(m, w, h), P.edge_gain, P.min_component)


def grabcut_seeded(img: Image.Image, work: int = 400) -> np.ndarray:
    """GrabCut initialised from the map (sure where > 0.9 / far from > 0.1, probable elsewhere)."""
    rgb = np.asarray(img.convert("RGB"))
    H, W = rgb.shape[:2]
    s = work / max(H, W)
    w, h = int(round(W * s)), int(round(H * s))
    small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    m = cv2.resize(u2netp.predict(img), (w, h))
    mask = np.where(m >= 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[cv2.erode((m > 0.9).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0] = cv2.GC_FGD
    r = max(3, int(0.06 * work))
    mask[cv2.dilate((m > 0.1).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) == 0] = cv2.GC_BGD
    if (mask == cv2.GC_FGD).sum() < 10 or (mask == cv2.GC_BGD).sum() < 10:
        return saliency.upsample(m, W, H)
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, None, np.zeros((1, 65)), np.zeros((1, 65)), 3,
                cv2.GC_INIT_WITH_MASK)
    return saliency.upsample(((mask == 1) | (mask == 3)).astype(np.float32), W, H)


def band_matting(img: Image.Image) -> np.ndarray:
    """The classical path's band matting (local colour means) on the map's upsampled boundary."""
    from adgen_dagster.imaging.segment import _refine_alpha

    rgb = np.asarray(img.convert("RGB"))
    H, W = rgb.shape[:2]
    full = saliency.upsample(u2netp.predict(img), W, H)
    s = min(1.0, 512 / max(H, W))
    small = cv2.resize(rgb, (int(round(W * s)), int(round(H * s))), interpolation=cv2.INTER_AREA)
    coarse = (cv2.resize(full, small.shape[1::-1], interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8)
    band = int(np.ceil(1.5 * max(H, W) / 320)) + 2
    return _refine_alpha(rgb.astype(np.float32) / 255, (full > 0.5).astype(np.uint8), small, coarse, band, SegmentParams())


def evaluate(name: str, fn, cases) -> dict:
    rows = []
    for c in cases:
        t = time.perf_counter()
        a = fn(c.image)
        rows.append({"iou": iou(a, c.alpha), "mae": mae(a, c.alpha), "s": time.perf_counter() - t, "kind": c.kind})
    return {"name": name, "rows": rows}


def summary(res: dict, base: dict | None, kinds: list[str]) -> list:
    r = res["rows"]
    mi, mm, ms = (float(np.mean([x[k] for x in r])) for k in ("iou", "mae", "s"))
    row = [res["name"], f"{mi:.4f}", f"{mm:.4f}", f"{ms:.2f}"]
    if base is not None:
        bi = float(np.mean([x["iou"] for x in base["rows"]]))
        bm = float(np.mean([x["mae"] for x in base["rows"]]))
        row += [f"{mi / bi:.3f}", f"{mm / bm:.3f}"]
    for k in kinds:
        sel = [x for x in r if x["kind"] == k]
        row.append(f"{np.mean([x['iou'] for x in sel]):.3f} / {np.mean([x['mae'] for x in sel]):.3f}")
    return row


def gate_table(cases, params: SegmentParams) -> None:
    """The gate on the default's cut-outs: good (IoU >= 0.8) rejected, bad (IoU < 0.5) let through."""
    counts = {"good": [0, 0], "middling": [0, 0], "bad": [0, 0]}
    rejected = []
    for c in cases:
        cut = cutout_auto(c.image, params)
        a = alpha_of(cut)
        q = iou(a, c.alpha)
        why = gate_reason(a, cut.stats, params)
        cls = "good" if q >= 0.8 else "bad" if q < 0.5 else "middling"
        counts[cls][1 if why else 0] += 1
        if why:
            rejected.append(f"  {c.name}: IoU {q:.3f}: {why}")
    print_table(["cut-out (IoU vs truth)", "passed", "rejected"],
                [[f"{k} ({'>= 0.8' if k == 'good' else '< 0.5' if k == 'bad' else '0.5-0.8'})", v[0], v[1]]
                 for k, v in counts.items()], title="Quality gate on the default's cut-outs")
    print("\n".join(rejected) or "  (nothing rejected)")


# A small launcher reports the command's peak RSS: Linux starts a child's peak at its parent's size at
# fork time and keeps it across exec, so measured straight from this (large) process every run would
# read as this process's size. The launcher costs about 10 ms of the time measured.
_PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r)")


def speed(runs: int) -> None:
    """`adgen cutout` end to end on 1024 px photos, in fresh processes; peak RSS per process."""
    adgen = Path(sys.executable).parent / "adgen"
    studio = REPO / "adgen_dagster" / "samples" / "abo" / "B07GTFSCHB_844a1cce.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.jpg"
        case = make_devset(n=1, size=1024, seed=11)[0]
        case.image.save(scene, quality=92)
        # As installed: a shell with PYTHONDONTWRITEBYTECODE set would recompile the package's sources on every run.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "adgen_dagster")], env=env, check=True)
        rows = []
        for label, photo in (("studio sample (1024x1024)", studio), (f"real-photo scene {case.image.size}", scene)):
            for seg in ("auto", "classical"):
                times, peaks = [], []
                for _ in range(runs):
                    t = time.perf_counter()
                    proc = subprocess.run([sys.executable, "-S", "-c", _PEAK, str(adgen), "cutout", "-q", "--segmenter", seg,
                                           str(photo), str(Path(tmp) / "o.png")], capture_output=True, env=env)
                    times.append(time.perf_counter() - t)
                    if proc.returncode not in (0, 1):
                        raise SystemExit(proc.stderr.decode()[-2000:])
                    peaks.append(int(proc.stderr.decode().split()[-1]) / 1024)
                rows.append([label, seg, statistics.median(times), min(times), max(peaks)])
    print_table(["photo", "segmenter", "median s", "min s", "peak MB"], rows,
                title=f"adgen cutout end to end, median of {runs} fresh processes (bar: <= 1.5 s, <= 1 GB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="cases in the development set (default 60)")
    ap.add_argument("--size", type=int, default=768, help="long side of its photos (default 768)")
    ap.add_argument("--steps", action="store_true", help="also: what each refinement step buys, and rejected candidates")
    ap.add_argument("--speed", action="store_true", help="also: adgen cutout end to end on 1024 px photos")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # tables appear as each finishes

    p = SegmentParams()
    cases = make_devset(n=args.n, size=args.size)
    kinds = sorted({c.kind for c in cases})
    u2netp.predict(cases[0].image)  # load and check the model once, outside the timings
    methods = [
        ("classical", lambda img: alpha_of(cutout_classical(img, p))),
        ("grabcut (5% rect)", grabcut_rect),
        ("u2netp (rembg)", u2netp.rembg_mask),
        ("u2netp (ours)", neural(p)),
        ("auto (default)", lambda img: alpha_of(cutout_auto(img, p))),
    ]
    results = [evaluate(n, f, cases) for n, f in methods]
    base = results[2]
    head = ["method", "IoU", "MAE", "s/img", "IoU x raw", "MAE x raw"] + [f"{k} IoU/MAE" for k in kinds]
    print_table(head, [summary(r, base, kinds) for r in results],
                title=f"Development set: {len(cases)} photos, long side {args.size} px ({', '.join(f'{k} {sum(c.kind == k for c in cases)}' for k in kinds)})")

    if args.steps:
        off = dict(detail_peak=0.0, edge_gain=1.0, min_component=0.0, second_view_uncertain=1e9)
        on = dict(off)
        steps = []
        for label, key in (("raw map, bilinear upsample", None), ("+ detail shots", "detail_peak"),
                           ("+ steeper edges", "edge_gain"), ("+ specks dropped", "min_component"),
                           ("+ second view when unsure (= u2netp)", "second_view_uncertain")):
            if key:
                on[key] = getattr(p, key)
            steps.append((label, SegmentParams(**on)))
        rows = [evaluate(n, neural(sp), cases) for n, sp in steps]
        rows.append(results[4])
        rows += [evaluate(f"not kept: {n}", f, cases) for n, f in
                 (("crop pass on the product's box", crop_pass), ("flips at test time", flip_tta),
                  ("GrabCut seeded from the map", grabcut_seeded), ("band matting on the map's edge", band_matting))]
        print_table(["step", "IoU", "MAE", "s/img", "IoU x raw", "MAE x raw"] + [f"{k} IoU/MAE" for k in kinds],
                    [summary(r, base, kinds) for r in rows], title="What each step buys (cumulative)")

    gate_table(cases, p)
    if args.speed:
        speed(args.runs)


if __name__ == "__main__":
    main()
