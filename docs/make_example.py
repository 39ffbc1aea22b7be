"""Rebuild docs/example.jpg: the sample products from `make demo`, then real photos (run from the repo root).

    make demo && .venv/bin/python docs/make_example.py

The first rows are the outputs `make demo` left under `.adgen/products/`; the last rows run
`adgen run` on the ordinary photos in `docs/photos/` (a product on a surface, on a table,
in front of a wall) into a temporary folder.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
DEMO = Path(".adgen/products")
PRODUCTS = ["gu10-led-bulb", "starter-duffel-bag", "vitamin-e-capsules"]
PHOTOS = ["fig-bowl", "wine-table", "bird-ornament"]
COLUMNS = ["product_image.png", "nobg_image.png", "retouched.png", "ads/1080x1080.png", "ads/1080x1350.png", "ads/1200x628.png"]
H = 300
OUT = DOCS / "example.jpg"


def checker(size, step=16):
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    for y in range(0, size[1], step):
        for x in range(0, size[0], step):
            if (x // step + y // step) % 2:
                d.rectangle([x, y, x + step - 1, y + step - 1], fill=(225, 225, 225))
    return im


def row(folder: Path) -> list[Image.Image]:
    tiles = []
    for name in COLUMNS:
        im = Image.open(folder / name)
        if im.mode == "RGBA":
            bg = checker(im.size)
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        im = im.convert("RGB")
        tiles.append(im.resize((round(im.width * H / im.height), H), Image.Resampling.LANCZOS))
    return tiles


def main() -> None:
    rows = [row(DEMO / pid) for pid in PRODUCTS]
    with tempfile.TemporaryDirectory() as tmp:
        adgen = Path(sys.executable).parent / "adgen"
        subprocess.run([str(adgen), "run", "-q", *(str(DOCS / "photos" / f"{p}.jpg") for p in PHOTOS), "--out", tmp],
                       check=True)
        rows += [row(Path(tmp) / pid) for pid in PHOTOS]
    width = max(sum(t.width for t in r) + 8 * (len(r) - 1) for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * (H + 8) - 8), (255, 255, 255))
    for i, tiles in enumerate(rows):
        x = 0
        for t in tiles:
            sheet.paste(t, (x, i * (H + 8)))
            x += t.width + 8
    sheet.save(OUT, quality=84, optimize=True)
    print(f"{OUT} {sheet.size}")


if __name__ == "__main__":
    main()
