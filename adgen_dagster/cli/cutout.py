"""`adgen cutout`: the product cut out of its photo, as an RGBA PNG (or only the mask).

Decoding, segmentation and PNG encoding are exactly the `product_image` and
`segmentation` stages' (same settings, same encoder), so `adgen cutout photo.jpg x.png`
writes the same bytes as the pipeline's `nobg_image.png`, and `--mask-only` its
`mask.png`. Dagster is never imported: this command's start-up is the import of the
core (numpy, OpenCV, Pillow, pydantic), about 0.6 s.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from adgen_dagster.cli._app import (EXIT_FAILED, Failed, Quiet, Verbose, app, backend_option, is_dash, one_line,
                                    reporting, say, verbose_on, write_atomic)
from adgen_dagster.cli.inputs import Inputs, output_stem, printable, read_named, read_stdin, scan_folder


EPILOG = """\
Examples:

\b
  adgen cutout shoe.jpg shoe.png                  # RGBA PNG: the product on transparency
  adgen cutout shoe.jpg mask.png --mask-only      # only the soft alpha mask (8-bit grey)
  adgen cutout photos/ cutouts/                   # one cutouts/<name>.png per photo in the folder
  adgen cutout a.jpg b.webp cutouts/              # several files into a folder
  cat shoe.jpg | adgen cutout - - > shoe.png      # stdin to stdout
  ADGEN_SEGMENT__GRABCUT_ITERS=4 adgen cutout shoe.jpg shoe.png   # any ADGEN_* setting applies

In folder mode, files that are not images by name, links, FIFOs and sub-folders are skipped
with a note; the exit code is 1 if any photo failed, and each failure is one line naming the
file. No output is ever written over an input: `adgen cutout photos/ photos/` writes
`x.png` beside `x.jpg` but never replaces a photo it reads. An OUT ending in / is a folder.
"""


@dataclass
class Item:
    label: str  # the input as the user named it (in messages; printable)
    src: Optional[Path]  # None: stdin
    dest: Optional[Path]  # None: stdout


def _usage(msg: str, hint: str = "IN") -> typer.BadParameter:
    return typer.BadParameter(msg, param_hint=hint)


def _as_folder(out: str) -> bool:
    """OUT names a folder: it is one, or it ends with a path separator (then it is created)."""
    return out.endswith(("/", os.sep)) or Path(out).is_dir()


def plan(inputs: list[Path], out_arg: str) -> tuple[list[Item], list[str], bool]:
    """What to read and where to write: (items, skipped notes, folder mode).

    One input that is not a folder (a file, a pipe such as `<(cat x.jpg)`, or -) is single
    mode: OUT is the output file, or the folder to put `<name>.png` in.
    """
    out = Path(out_arg)
    for p in inputs:
        if not is_dash(p) and not os.path.lexists(p):
            raise _usage(f"{printable(str(p))!r} does not exist")
    dashes = [p for p in inputs if is_dash(p)]
    if dashes and len(inputs) > 1:
        raise _usage("'-' (stdin) must be the only input")
    if len(inputs) == 1 and (is_dash(inputs[0]) or not inputs[0].is_dir()):
        src = inputs[0]
        label = "<stdin>" if is_dash(src) else printable(str(src))
        if is_dash(out):
            return [Item(label, None if is_dash(src) else src, None)], [], False
        if _as_folder(out_arg):
            if is_dash(src):
                raise _usage("reading stdin needs an output file name (or - for stdout), not a folder", "OUT")
            return [Item(label, src, out / (output_stem(src.name) + ".png"))], [], False
        return [Item(label, None if is_dash(src) else src, out)], [], False

    # folder mode: one or more folders and/or several files, into the folder OUT
    if is_dash(out):
        raise _usage("several inputs (or a folder) need an output folder, not stdout", "OUT")
    if out.exists() and not out.is_dir():
        raise _usage(f"{printable(out_arg)!r} is a file; several inputs (or a folder) need an output folder", "OUT")
    items: list[Item] = []
    skipped: list[str] = []
    for p in inputs:
        photos, notes = scan_folder(p) if p.is_dir() else ([p], [])
        skipped += notes
        items += [Item(printable(str(f)), f, out / (output_stem(f.name) + ".png")) for f in photos]
    return items, skipped, True


def _failure(item: Item, exc: BaseException, verbose: bool) -> str:
    """One line that names the photo, whatever went wrong."""
    msg = one_line(exc, verbose)
    return msg if msg.startswith(item.label) else f"{item.label}: {msg}"


@app.command(epilog=EPILOG)
def cutout(
    inputs: Annotated[List[Path], typer.Argument(metavar="IN", help="Photo file(s) or folder(s); - reads stdin.", show_default=False)],
    out: Annotated[str, typer.Argument(metavar="OUT", help="Output PNG file, or folder (several inputs, a folder, or a name "
                                        "ending in /); - writes stdout.", show_default=False)],
    segmenter: Annotated[Optional[str], backend_option("segmenter", "SEGMENTERS", "ADGEN_SEGMENTER")] = None,
    mask_only: Annotated[bool, typer.Option("--mask-only", help="Write the 8-bit alpha mask instead of the RGBA cut-out.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Cut the product out of photos: a PNG with alpha, or --mask-only."""
    with reporting("cutout", verbose):
        items, skipped, folder_mode = plan(list(inputs), out)
        from adgen_dagster.backends import get_segmenter
        from adgen_dagster.cli._app import load_settings
        from adgen_dagster.imaging.decode import decode_upload
        from adgen_dagster.imaging.segment_gate import check_cutout
        from adgen_dagster.models.host import host_for
        from adgen_dagster.encoding import encode_output

        settings = load_settings(segmenter=segmenter)
        # an unknown ADGEN_SEGMENTER fails here, naming it; a neural one runs on this process's host
        segment = get_segmenter(settings.segmenter, host=host_for(settings.gpu))
        for note in skipped:
            say(note)
        done = failed = 0
        written: dict[Path, str] = {}
        sources = Inputs()
        for item in items:
            if item.src is not None:
                sources.add(item.src, item.label)
        cap = settings.decode.max_bytes
        for item in items:
            t0 = time.perf_counter()
            try:
                if item.dest is not None and item.dest.resolve() in written:
                    raise ValueError(f"{item.label}: its output {printable(str(item.dest))} is already written from "
                                     f"{written[item.dest.resolve()]}")
                if item.dest is not None:
                    sources.guard(item.dest, item.label)  # never over a photo being read
                data = read_stdin(cap) if item.src is None else read_named(item.src, item.label, cap)
                photo = decode_upload(data, item.label, settings.decode)
                cut = check_cutout(segment(photo, settings.segment), settings.segment, item.label)
                png = encode_output("mask.png", cut.mask) if mask_only else encode_output("nobg_image.png", cut.rgba)
                if item.dest is None:
                    sys.stdout.buffer.write(png)
                    sys.stdout.buffer.flush()
                else:
                    write_atomic(item.dest, png)
                    written[item.dest.resolve()] = item.label
            except Exception as exc:  # noqa: BLE001 - one line per failed photo, the others go on
                if not folder_mode:
                    raise Failed(_failure(item, exc, verbose_on(verbose))) from exc
                failed += 1
                if verbose_on(verbose):
                    import traceback

                    traceback.print_exc()
                say(f"adgen cutout: {_failure(item, exc, verbose_on(verbose))}")
                continue
            done += 1
            if not quiet and item.dest is not None:
                what = "mask" if mask_only else "cut-out"
                say(f"{item.label} -> {printable(str(item.dest))}  ({what} {cut.rgba.width}x{cut.rgba.height}, "
                    f"coverage {float(cut.stats.get('coverage', 0.0)):.1%}, {time.perf_counter() - t0:.2f} s)")
        if folder_mode and not quiet:
            say(f"{done} written, {failed} failed, {len(skipped)} skipped -> {printable(out)}")
        if folder_mode and not items:
            say(f"adgen cutout: no photos found in {', '.join(printable(str(p)) for p in inputs)}")
        if failed or (folder_mode and not items):
            raise typer.Exit(EXIT_FAILED)
