"""Compose the development set: real-photo backgrounds x photographed objects with known alpha."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SOURCES = Path(__file__).resolve().parent / "sources"


@dataclass
class DevCase:
    name: str
    image: Image.Image  # RGB, 8-bit, JPEG round-tripped as a phone photo would be
    alpha: np.ndarray  # float32 HxW in [0, 1]: the placed object's alpha (shadows are background)
    kind: str  # "scene" (real photo), "pair" (two products on one), "studio" (sweep), "closeup" (runs off the frame)


def _load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def _load_rgba(path: Path) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
    rgb, alpha = a[..., :3], a[..., 3]
    ys, xs = np.nonzero(alpha > 0.01)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return rgb[sl], alpha[sl]


def _crop_bg(bg: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of the photo with aspect w:h, resized to w x h, maybe mirrored."""
    H, W = bg.shape[:2]
    s = min(W / w, H / h) * rng.uniform(0.7, 1.0)
    cw, ch = int(w * s), int(h * s)
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    out = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_CUBIC)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def _studio(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A paper sweep: light wall fading into a slightly darker floor, with a gentle vignette."""
    tint = np.array([1.0, 1.0, 1.0]) - rng.uniform(0.0, 0.12, 3) * (rng.random() < 0.5)
    top, floor = rng.uniform(0.88, 1.0), rng.uniform(0.78, 0.95)
    y = np.linspace(0, 1, h)[:, None]
    level = top + (floor - top) * np.clip((y - 0.45) / 0.4, 0, 1)
    xx = np.linspace(-1, 1, w)[None, :]
    level = level * (1 - 0.08 * xx ** 2)
    return np.clip(level[..., None] * tint, 0, 1).astype(np.float32)


def _shadow(alpha: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Cast shadow (the silhouette squashed onto the floor, sheared, blurred) plus a contact line."""
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return np.zeros_like(alpha)
    base = ys.max()
    squash, shear = rng.uniform(0.15, 0.35), rng.uniform(-0.8, 0.8)
    M = np.float32([[1, shear, -shear * base], [0, squash, base * (1 - squash)]])
    cast = cv2.warpAffine(alpha, M, (w, h))
    cast = cv2.GaussianBlur(cast, (0, 0), max(2.0, 10 * scale)) * rng.uniform(0.25, 0.55)
    contact = np.zeros_like(alpha)
    x0, x1 = xs[ys >= base - 3].min(), xs[ys >= base - 3].max()
    cv2.ellipse(contact, ((x0 + x1) // 2, int(base)), (max(2, (x1 - x0) // 2), max(2, int(6 * scale))), 0, 0, 360, 1.0, -1)
    contact = cv2.GaussianBlur(contact, (0, 0), max(1.5, 4 * scale)) * rng.uniform(0.3, 0.6)
    return np.clip(np.maximum(cast, contact) * (1 - alpha), 0, 1)


def _place(fg: np.ndarray, fa: np.ndarray, w: int, h: int, rng: np.random.Generator, closeup: bool):
    """Scale and position the object; returns full-frame (F, alpha), the object cut by the frame if close."""
    oh, ow = fa.shape
    if closeup:  # the object fills the frame and runs off it on one or two sides
        s = max(h * rng.uniform(0.95, 1.25) / oh, w * rng.uniform(0.75, 1.0) / ow)
    else:
        s = min(h * rng.uniform(0.35, 0.8) / oh, w * rng.uniform(0.4, 0.85) / ow)
    nh, nw = max(2, int(oh * s)), max(2, int(ow * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    f2 = np.clip(cv2.resize(fg, (nw, nh), interpolation=interp), 0, 1)
    a2 = np.clip(cv2.resize(fa, (nw, nh), interpolation=interp), 0, 1)
    if closeup:
        cx, by = w / 2 + rng.uniform(-0.15, 0.15) * w, h + rng.uniform(0.0, 0.25) * nh
    else:
        cx, by = rng.uniform(0.3, 0.7) * w, rng.uniform(0.62, 0.95) * h
    x0, y0 = int(cx - nw / 2), int(by - nh)
    x0 = min(max(x0, -nw // 3 if closeup else 0), w - (nw if not closeup else 2 * nw // 3))
    y0 = max(y0, -nh // 3 if closeup else 0)
    F = np.zeros((h, w, 3), np.float32)
    A = np.zeros((h, w), np.float32)
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(w, x0 + nw), min(h, y0 + nh)
    if dx1 > dx0 and dy1 > dy0:
        F[dy0:dy1, dx0:dx1] = f2[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        A[dy0:dy1, dx0:dx1] = a2[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    return F, A, s


def _one(name: str, kind: str, bg_src: np.ndarray | None, objects: list[tuple[np.ndarray, np.ndarray]], size: int,
         rng: np.random.Generator) -> DevCase:
    aspect = [(4, 3), (1, 1), (3, 4)][int(rng.integers(0, 3))]
    w, h = (size, size * aspect[1] // aspect[0]) if aspect[0] >= aspect[1] else (size * aspect[0] // aspect[1], size)
    B = _studio(w, h, rng) if bg_src is None else _crop_bg(bg_src, w, h, rng)
    if kind != "studio" and rng.random() < 0.5:  # shallow depth of field behind the product
        B = cv2.GaussianBlur(B, (0, 0), rng.uniform(1.0, 4.0))
    cast = B.reshape(-1, 3).mean(0)
    cast = cast / max(cast.mean(), 1e-3)
    I, A = B, np.zeros((h, w), np.float32)
    for k, (fg, fa) in enumerate(objects):  # a pair: two products side by side, both are the truth
        if len(objects) > 1:
            F, Ak, _ = _place(fg, fa, w // 2, h, rng, closeup=False)
            F = np.pad(F, ((0, 0), (k * (w // 2), w - (k + 1) * (w // 2)), (0, 0)))
            Ak = np.pad(Ak, ((0, 0), (k * (w // 2), w - (k + 1) * (w // 2))))
        else:
            F, Ak, _ = _place(fg, fa, w, h, rng, closeup=kind == "closeup")
        # the scene's light on the product: a colour cast towards the background's mean, some exposure change
        F = np.clip(F * (1 + rng.uniform(0.1, 0.35) * (cast - 1)) * rng.uniform(0.85, 1.1), 0, 1)
        I = I * (1 - _shadow(Ak, rng, size / 768.0))[..., None]
        I = Ak[..., None] * F + (1 - Ak[..., None]) * I
        A = Ak + (1 - Ak) * A
    I = I + rng.normal(0, rng.uniform(0.004, 0.012), I.shape)
    img = Image.fromarray((np.clip(I, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(82, 94)))
    img = Image.open(BytesIO(buf.getvalue())).convert("RGB")
    return DevCase(name, img, A, kind)


def make_devset(n: int = 60, size: int = 768, seed: int = 7, only: list[int] | None = None) -> list[DevCase]:
    """`n` cases, long side `size`: of every 20, 3 studio, 3 close-ups, 2 pairs, 12 real-photo scenes.
    `only`: just these case numbers (each is the same photo as in the whole set)."""
    bgs = sorted((SOURCES / "bg").glob("*.jpg"))
    fgs = sorted((SOURCES / "fg").glob("*.png"))
    rng = np.random.default_rng(seed)
    bg_cache: dict[Path, np.ndarray] = {}
    fg_order = list(rng.permutation(len(fgs)))
    cases, nf = [], 0
    for i in range(n):
        r = i % 20
        kind = ("studio" if r in (3, 10, 17) else "closeup" if r in (6, 13, 19) else "pair" if r in (1, 11)
                else "scene")
        paths = [fgs[fg_order[(nf + k) % len(fgs)]] for k in range(2 if kind == "pair" else 1)]
        nf += len(paths)
        if only is not None and i not in only:
            continue
        bpath = bgs[i % len(bgs)]
        bg = None if kind == "studio" else bg_cache.setdefault(bpath, _load_rgb(bpath))
        label = "studio" if bg is None else bpath.stem
        what = "+".join("-".join(p.stem.split("_")[-2:])[:16] for p in paths)
        name = f"{i:02d}_{kind}_{what}_on_{label}"
        cases.append(_one(name, kind, bg, [_load_rgba(p) for p in paths], size, np.random.default_rng([seed, i])))
    return cases
