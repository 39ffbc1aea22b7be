"""Rebuild `bench/devset/sources/` from the Debian packages and the scikit-image wheel it came from.

Run once by a developer (it needs the network to fetch the packages); the benchmark
itself only reads the committed, downsized copies. Provenance and licences of every
file are in `bench/devset/sources/LICENSES.md`.

    apt-get download lomiri-wallpapers-16.04 tuxpaint-stamps-default
    pip download --no-deps --only-binary=:all: scikit-image
    python bench/devset/collect_sources.py --debs DIR --skimage-wheel WHEEL
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "sources"

# Background photographs: (file in the package, crop box as fractions (x0, y0, x1, y1), name).
LOMIRI = "usr/share/backgrounds"
BACKGROUNDS = [
    ("Wine_by_Jakkub_Mede.jpg", (0.0, 0.72, 0.3, 1.0), "room_floor"),
    ("Wine_by_Jakkub_Mede.jpg", (0.0, 0.0, 1.0, 0.55), "room_shelf"),
    ("Picture_0B_by_freespace.jpg", (0.0, 0.55, 0.3, 1.0), "concrete"),
    ("friends_by_Aitzol_Berasategi.jpg", (0.0, 0.55, 1.0, 1.0), "wood_planks"),
    ("free_by_Peter_Nerlich.jpg", (0.66, 0.42, 1.0, 1.0), "grey_wall"),
    ("greentock_by_Peter_Nerlich.jpg", (0.0, 0.0, 1.0, 1.0), "wall_clock"),
    ("Picture_1A_by_freespace.jpg", (0.0, 0.0, 1.0, 1.0), "brushes"),
    ("life_by_Aitzol_Berasategi.jpg", (0.0, 0.0, 1.0, 1.0), "stream"),
    ("aitzgorri_by_Aitzol_Berasategi.jpg", (0.0, 0.0, 1.0, 1.0), "valley"),
    ("picosdeeuropa_by_Aitzol_Berasategi.jpg", (0.0, 0.0, 1.0, 1.0), "mountains"),
    ("seeding_by_Clements_Engelhardt.jpg", (0.0, 0.0, 1.0, 1.0), "dandelions"),
    ("Dragonfly_by_Bolly.jpg", (0.0, 0.0, 1.0, 1.0), "leaves"),
    ("Bridge_by_Sander_Klootwijk.jpg", (0.0, 0.0, 1.0, 1.0), "bridge"),
]
SKIMAGE = ["brick.png", "gravel.png", "grass.png"]

# Photographed objects with hand-cut alpha (Tux Paint stamps), under usr/share/tuxpaint/stamps.
STAMPS = [
    "animals/mammals/bears/toys/edward_bear.png", "animals/marsupials/koala.png", "animals/birds/duck.png",
    "animals/birds/magellanic_penguin.png", "animals/birds/helmeted_guineafowl.png", "animals/mammals/apes/chimp.png",
    "animals/mammals/bears/european-bear.png", "animals/mammals/bovines/cow_white.png",
    "animals/mammals/bovines/gnu-baby.png", "animals/mammals/cats/tiger_sumatran.png",
    "animals/mammals/pig_golden2.png", "animals/mammals/rodents/capybara.png", "animals/fish/lobster.png",
    "food/fruit/Apricot_whole.png", "food/fruit/Cherry_Stella.png", "food/fruit/Strawberry2.png",
    "food/fruit/cherimoya.png", "food/fruit/banana.png", "food/fruit/pineapple.png", "food/fruit/grapes.png",
    "food/fruit/lemon.png", "food/spices/ginger.png", "food/vegetables/corn.png",
    "hobbies/music/brass/trumpet.png", "hobbies/music/percussion/drum_tomtom_floor.png",
    "hobbies/music/string/guitar_classical.png", "hobbies/music/string/guitar_electric.png",
    "hobbies/binoculars.png", "hobbies/camera_35mm.png", "household/Lightbulb.png", "household/cylinder.png",
    "household/toilet.png", "household/tools/cementmixer.png", "household/dishes/mug.png",
    "household/dishes/pitcher_small.png", "household/dishes/teapot.png", "household/kettle.png",
    "household/rubberduck.png", "medical/stethoscope.png", "plants/flowers/anemone_red.png",
    "plants/flowers/daffodil.png", "plants/mushrooms/cep-1.png",
    "seasonal/christmas/German_Christmas_toy.png", "seasonal/christmas/Mince_Pie.png",
    "seasonal/christmas/Roast_turkey.png", "seasonal/halloween/jackolantern_mean.png", "sports/basketball.png",
    "sports/trophy_cup.png", "sports/tennis_ball.png", "vehicles/auto/truck.png", "vehicles/emergency/firetruck.png",
    "vehicles/flight/balloon360.png", "vehicles/wheel_tractor.png",
]


def extract(deb: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", deb, str(into)], check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debs", required=True, help="folder holding the two .deb files")
    ap.add_argument("--skimage-wheel", required=True)
    args = ap.parse_args()
    (OUT / "bg").mkdir(parents=True, exist_ok=True)
    (OUT / "fg").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lomiri = extract(glob.glob(f"{args.debs}/lomiri-wallpapers-16.04_*.deb")[0], Path(tmp) / "lomiri")
        tux = extract(glob.glob(f"{args.debs}/tuxpaint-stamps-default_*.deb")[0], Path(tmp) / "tux")
        for src, (x0, y0, x1, y1), name in BACKGROUNDS:
            im = Image.open(lomiri / LOMIRI / src).convert("RGB")
            w, h = im.size
            im = im.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))
            im.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
            im.save(OUT / "bg" / f"{name}.jpg", quality=90)
        with zipfile.ZipFile(args.skimage_wheel) as z:
            for name in SKIMAGE:
                with z.open(f"skimage/data/{name}") as f:
                    Image.open(f).convert("RGB").save(OUT / "bg" / f"skimage_{name[:-4]}.jpg", quality=90)
        for rel in STAMPS:
            im = Image.open(tux / "usr/share/tuxpaint/stamps" / rel).convert("RGBA")
            im.save(OUT / "fg" / (rel.replace("/", "_").lower()), optimize=True)


if __name__ == "__main__":
    main()
