"""Rebuild docs/example.jpg from the outputs of `make demo` (run from the repo root)."""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(".adgen/products")
PRODUCTS = sys.argv[1:] or ["gu10-led-bulb", "starter-duffel-bag", "vitamin-e-capsules"]
COLUMNS = ["product_image.png", "nobg_image.png", "retouched.png", "ads/1080x1080.png", "ads/1080x1350.png", "ads/1200x628.png"]
H = 300
OUT = Path(__file__).resolve().parent / "example.jpg"


def checker(size, step=16):
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    for y in range(0, size[1], step):
        for x in range(0, size[0], step):
            if (x // step + y // step) % 2:
                d.rectangle([x, y, x + step - 1, y + step - 1], fill=(225, 225, 225))
    return im


rows = []
for pid in PRODUCTS:
    tiles = []
    for name in COLUMNS:
        im = Image.open(ROOT / pid / name)
        if im.mode == "RGBA":
            bg = checker(im.size)
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        im = im.convert("RGB")
        tiles.append(im.resize((round(im.width * H / im.height), H), Image.Resampling.LANCZOS))
    rows.append(tiles)
width = max(sum(t.width for t in r) + 8 * (len(r) - 1) for r in rows)
sheet = Image.new("RGB", (width, len(rows) * (H + 8) - 8), (255, 255, 255))
for i, tiles in enumerate(rows):
    x = 0
    for t in tiles:
        sheet.paste(t, (x, i * (H + 8)))
        x += t.width + 8
sheet.save(OUT, quality=86, optimize=True)
print(f"{OUT} {sheet.size}")
