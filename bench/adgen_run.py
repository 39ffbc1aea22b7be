"""`adgen run` per 1024-px product, all stages and all 17 files written, and where the time goes.

In one process, on the same products (the six samples and mirrored copies, 1024 px):
- core: every stage chained in memory, nothing encoded or written (`pipeline.run_product`);
- before: what `adgen run` did until now: each stage's outputs encoded as PNG (Pillow,
  level 3 for every file) and decoded again by the next stage, then the files written one
  after the other;
- adgen run: the command's own loop (`cli.run.process`): images handed from stage to stage
  in memory, each file encoded at its own level (`adgen_dagster.encoding.png_level`: fast for files
  only the pipeline reads, well compressed for downloads) by OpenCV on encoder threads, and
  written while the next products' stages run; first one photo at a time
  (`ADGEN_RUN_WORKERS=1`), then as shipped, a photo per core (`adgen_dagster/product_threads.py`), with
  a check that both write the same files byte for byte.

Then the PNG settings alone: encode time and bytes per group of files, old vs new, and a
check that every new file decodes to exactly the pixels of the old one. Wall and CPU
seconds are printed: on a shared machine, CPU seconds are the steadier measure.

    python bench/adgen_run.py [--products 12]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

from _util import print_table, ten_uploads  # (importing _util puts the repo on sys.path)

BAR_S = 1.3
MAX_BYTES = 0  # the upload size limit (settings.decode.max_bytes), set in main()


def uploads_1024(n: int) -> list[tuple[str, bytes]]:
    """`n` distinct photos at 1024 px: the ten of `ten_uploads`, then flipped, rotated and cropped variants."""
    from PIL import Image, ImageOps

    base = ten_uploads()
    variants = [
        ("", lambda im: im),
        ("flipped-", ImageOps.flip),
        ("rot90-", lambda im: im.transpose(Image.Transpose.ROTATE_90)),
        ("rot270-", lambda im: im.transpose(Image.Transpose.ROTATE_270)),
        ("crop90-", lambda im: ImageOps.crop(im, round(min(im.size) * 0.05))),
        ("flipcrop85-", lambda im: ImageOps.crop(ImageOps.flip(im), round(min(im.size) * 0.075))),
    ]
    out = []
    for i in range(n):
        name, data = base[i % len(base)]
        prefix, change = variants[(i // len(base)) % len(variants)]
        if i >= len(base) * len(variants):
            prefix, change = f"v{i}-", (lambda im, i=i: ImageOps.crop(im, 4 + i % 50))
        im = change(Image.open(io.BytesIO(data)).convert("RGB"))
        scale = 1024 / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        out.append((prefix + name, buf.getvalue()))
    return out


class Clock:
    """Wall seconds, CPU seconds of the whole process, and CPU seconds of this thread alone."""

    def __enter__(self):
        self.wall, self.cpu, self.main = time.perf_counter(), time.process_time(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.main = time.thread_time() - self.main


def jobs_for(uploads, folder: Path):
    from adgen_dagster.cli.run import Job

    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name, data in uploads:
        (folder / name).write_bytes(data)
        jobs.append(Job(name, name, folder / name))
    return jobs


def digests(root: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def old_png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def run_before(jobs, chain, out: Path) -> None:
    """The previous `adgen run`: PNG bytes between stages (Pillow, level 3), sequential writes."""
    from PIL import Image

    from adgen_dagster.cli._app import write_atomic
    from adgen_dagster.product_ids import product_id_for
    from adgen_dagster.stages import StageContext

    for job in jobs:
        pid = product_id_for(job.upload_name)
        ctx = StageContext(pid, job.label)
        files = {"upload": job.path.read_bytes(), "sidecar": b""}
        written = {}
        for _, compute in chain:
            outputs, _ = compute(files, ctx)
            outputs = {k: old_png(v) if isinstance(v, Image.Image) else v for k, v in outputs.items()}
            files.update(outputs)
            written.update(outputs)
        for name, data in written.items():
            write_atomic(out / pid / name, data)


def png_table(out_old: Path, out_new: Path) -> list[list]:
    """Encode time and size per group, old vs new, and pixel equality of every PNG."""
    import numpy as np
    from PIL import Image

    from adgen_dagster.encoding import INTERMEDIATE, encode_output

    groups: dict[str, list] = {}
    for old in sorted(out_old.rglob("*.png")):
        rel = old.relative_to(out_old).as_posix()
        new = out_new / rel
        a, b = Image.open(old), Image.open(new)
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), f"pixels differ: {rel}"
        name = rel.split("/", 1)[1]
        g = groups.setdefault("pipeline-only (level 1)" if name in INTERMEDIATE else "downloads (level 4)", [0, 0, 0.0, 0.0, 0])
        with Clock() as c_old:
            old_png(a)
        with Clock() as c_new:
            encode_output(name, a)
        g[0] += old.stat().st_size
        g[1] += new.stat().st_size
        g[2] += c_old.cpu
        g[3] += c_new.cpu
        g[4] += 1
    rows = []
    for label, (s_old, s_new, t_old, t_new, n) in groups.items():
        rows.append([label, n, s_old / 1e6, s_new / 1e6, t_old * 1000, t_new * 1000])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=12)
    args = parser.parse_args()

    from adgen_dagster.cli.run import process
    from adgen_dagster.product_threads import product_workers
    from adgen_dagster.imaging.details import ProductDetails
    from adgen_dagster.pipeline import run_product
    from adgen_dagster.settings import get_settings
    from adgen_dagster.stage_runner import chain_for

    uploads = uploads_1024(args.products)
    n = len(uploads)
    chain = chain_for(get_settings())
    global MAX_BYTES
    MAX_BYTES = get_settings().decode.max_bytes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = jobs_for(uploads, tmp / "photos")
        run_before(jobs[:1], chain, tmp / "warm")  # imports, fonts
        process(jobs[:1], chain, None, tmp / "warm2", True, False, MAX_BYTES)

        with Clock() as core:
            for name, data in uploads:
                run_product(data, name, name.rsplit(".", 1)[0].lower(), ProductDetails())
        with Clock() as before:
            run_before(jobs, chain, tmp / "before")
        os.environ["ADGEN_RUN_WORKERS"] = "1"
        with Clock() as one:
            outcomes = process(jobs, chain, None, tmp / "one", True, False, MAX_BYTES)
        assert all(o.ok for o in outcomes)
        os.environ.pop("ADGEN_RUN_WORKERS")
        with Clock() as now:
            outcomes = process(jobs, chain, None, tmp / "now", True, False, MAX_BYTES)
        assert all(o.ok for o in outcomes) and len(list((tmp / "now").rglob("*"))) >= 17 * n
        assert digests(tmp / "one") == digests(tmp / "now"), "photos in parallel changed a file"
        pngs = png_table(tmp / "before", tmp / "now")

    def idle(c: Clock) -> float:  # on 2 idle cores: the main thread's work, or all the work shared by 2
        return max(c.main, c.cpu / 2) / n

    rows = [
        ["core in memory (no files)", core.wall / n, core.cpu / n, core.main / n, idle(core), 1.0],
        ["before: PNG between stages, Pillow level 3, sequential writes", before.wall / n, before.cpu / n, before.main / n,
         idle(before), before.wall / core.wall],
        ["adgen run, one photo at a time (ADGEN_RUN_WORKERS=1)", one.wall / n, one.cpu / n, one.main / n, idle(one),
         one.wall / core.wall],
        [f"adgen run now ({product_workers()} photos at a time)", now.wall / n, now.cpu / n, now.main / n,
         now.cpu / n / 2, now.wall / core.wall],
    ]
    load = os.getloadavg()
    print_table(["path", "wall s / product", "CPU s / product", "main thread CPU s", "2 idle cores (est.) s",
                 "wall / core"], rows,
                title=f"adgen run, {n} products at 1024 px, 17 files each; {os.cpu_count()} CPUs, "
                      f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print_table(["files", "count", "MB before", "MB now", "encode ms before", "encode ms now"], pngs,
                title="PNG encoding per group of files (every file decodes to the same pixels before and now)")
    per = now.wall / n
    print(f"\nadgen run: {per:.2f} s per product (bar <= {BAR_S} s: {'PASS' if per <= BAR_S else 'FAIL'}); "
          f"{before.wall / now.wall:.2f}x faster than before. On a busy machine, the estimate for 2 idle cores "
          f"(half of all CPU time, photos in parallel) is {now.cpu / n / 2:.2f} s per product; "
          f"{one.wall / now.wall:.2f}x faster than one photo at a time (same files, byte for byte).")


if __name__ == "__main__":
    main()
