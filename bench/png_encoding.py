"""PNG settings on the pipeline's own outputs: libpng's per-row filter choice vs one SUB filter for every row.

The images are every stage's outputs for N products (the six samples and variants at
1024 px, `adgen_run.uploads_1024`), grouped as `adgen_dagster.encoding` groups them: what
people download (level 4) and what only the pipeline reads again (level 1). Each group is
encoded both ways at its own level, on this thread, `--rounds` times; CPU seconds of this
thread are the measure (steady on a shared machine). Every file of both ways decodes to
the same pixels; the bytes differ.

    python bench/png_encoding.py [--products 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from _util import print_table  # (importing _util puts the repo on sys.path)


def outputs(n: int) -> list[tuple[str, object]]:
    from PIL import Image

    from adgen_run import uploads_1024
    from adgen_dagster.imaging.details import ProductDetails
    from adgen_dagster.pipeline import run_product

    images = []
    for name, data in uploads_1024(n):
        files = run_product(data, name, name.rsplit(".", 1)[0].lower(), ProductDetails()).files
        images += [(k, v) for k, v in files.items() if isinstance(v, Image.Image)]
    return images


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import cv2
    import numpy as np

    from adgen_dagster.encoding import _TO_BGR, DOWNLOAD_LEVEL, decode_png, png_level, png_params

    images = outputs(args.products)
    ways = {
        "libpng's choice per row (before)": lambda level: [cv2.IMWRITE_PNG_COMPRESSION, level],
        "SUB on every row (now)": png_params,
    }
    rows, n = [], args.products
    for group, level in (("downloads", DOWNLOAD_LEVEL), ("pipeline-only", 1)):
        files = [(k, img) for k, img in images if (png_level(k) == level)]
        pixels = [cv2.cvtColor(np.asarray(img), _TO_BGR[img.mode]) if img.mode in _TO_BGR else np.asarray(img)
                  for _, img in files]
        measured = {}
        for way, params in ways.items():
            best, size = float("inf"), 0
            for _ in range(args.rounds):
                t = time.thread_time()
                encoded = [cv2.imencode(".png", p, params(level))[1].tobytes() for p in pixels]
                best = min(best, time.thread_time() - t)
            size = sum(map(len, encoded))
            for (_, img), data in zip(files, encoded):
                assert np.array_equal(np.asarray(decode_png(data)), np.asarray(img)), "not lossless"
            measured[way] = (best, size)
        (t0, s0), (t1, s1) = measured.values()
        for way, (t, s) in measured.items():
            rows.append([f"{group} (level {level}, {len(files)} files)", way, s / 1e6, t * 1000 / n,
                         s / s0, t / t0])
    print_table(["files", "filter", "MB", "encode CPU ms / product", "size ratio", "CPU ratio"], rows,
                title=f"PNG encoding of {n} products' outputs (1024 px), best of {args.rounds}; "
                      "every file decodes to the same pixels both ways")


if __name__ == "__main__":
    main()
