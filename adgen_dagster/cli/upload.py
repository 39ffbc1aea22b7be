"""`adgen upload`: photos (and their details) into the configured store's `uploads/`.

Each photo is checked the way the `product_image` stage will read it (decoded with the
same settings) before anything is written, so a bad file is refused here, with one line
naming it, instead of failing its partition later. The details sidecar is written
before the photo, so whoever picks the photo up (the upload sensor) sees its details.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from adgen_dagster.cli._app import EXIT_FAILED, Failed, Quiet, Verbose, app, load_settings, one_line, reporting, say, verbose_on
from adgen_dagster.cli.inputs import IMAGE_SUFFIXES, is_image_name, printable, read_named, read_sidecar, scan_folder

EPILOG = """\
Examples:

\b
  adgen upload shoe.jpg                                    # -> <store>/uploads/shoe.jpg (+ shoe.jpg.json if next to it)
  adgen upload shoe.jpg --details '{"headline": "Summer sale", "price": "$19"}'
  adgen upload photos/*.jpg --details details.json         # the same details for every photo
  ADGEN_STORE__ROOT=/srv/adgen adgen upload photos/        # every photo in the folder, into that store

The store is the one the assets use (ADGEN_STORE__*); `adgen doctor` shows which. A photo's
details come from --details, else from `<photo>.json` next to it; a re-upload replaces both.
"""


def open_store(settings):
    """The store the assets would use for these settings.

    The local store is opened directly (StoreResource does no more than this for it), so
    a local upload does not pay for importing Dagster; other kinds go through the resource.
    """
    if settings.store.kind == "local":
        from resources.object_store import LocalObjectStore

        return LocalObjectStore(settings.store.root)
    from resources.store_resource import StoreResource

    fields = StoreResource.model_fields
    return StoreResource(**{k: v for k, v in settings.store.model_dump().items() if k in fields}).get_store()


def details_option(value: Optional[str]) -> Optional[bytes]:
    """--details: inline JSON, or a path to a JSON file (optionally written @path)."""
    if value is None:
        return None
    from adgen_dagster.imaging.details import MAX_DETAILS_BYTES, DetailsError, parse_details

    text = value.strip()
    source = "--details"
    if not text.startswith("{"):
        path = Path(text[1:] if text.startswith("@") else text)
        if not path.is_file():
            raise typer.BadParameter("give a JSON object or the path of a JSON file", param_hint="--details")
        source = str(path)
        try:
            data = read_named(path, source, MAX_DETAILS_BYTES)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--details") from None
    else:
        data = text.encode("utf-8")
    try:
        parse_details(data, source=source)
    except DetailsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--details") from None
    return data


@app.command(epilog=EPILOG)
def upload(
    files: Annotated[List[Path], typer.Argument(metavar="FILE", help="Photo file(s) or folder(s).", show_default=False)],
    details: Annotated[Optional[str], typer.Option("--details", metavar="JSON", help="Details for every photo: a JSON object or a JSON file.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Put photos (and details) into the store's uploads/ for the sensor."""
    with reporting("upload", verbose):
        sidecar_override = details_option(details)
        paths: list[Path] = []
        for p in files:
            if not os.path.lexists(p):
                raise typer.BadParameter(f"{printable(str(p))!r} does not exist", param_hint="FILE")
            if p.is_dir():
                found, notes = scan_folder(p)  # links, FIFOs, sub-folders: a note each, never opened
                for note in notes:
                    say(note)
                if not found:
                    say(f"adgen upload: no photos in {printable(str(p))}")
                paths += found
            else:
                paths.append(p)
        if not paths:
            raise Failed("nothing to upload")

        from adgen_dagster.imaging.decode import decode_upload
        from adgen_dagster.imaging.details import parse_details
        from adgen_dagster.product_ids import product_id_for
        from resources.object_store import key_problem

        settings = load_settings()
        store = open_store(settings)
        done: dict[str, str] = {}
        failed = 0
        for p in paths:
            label = printable(str(p))
            try:
                key = f"uploads/{p.name}"
                if not is_image_name(p.name):
                    raise Failed(f"{label}: not an image file name (expected one of {', '.join(IMAGE_SUFFIXES)})")
                problem = key_problem(key)
                if problem is not None:
                    raise Failed(f"{label}: cannot be an upload name ({problem}); rename it")
                if key in done:
                    raise Failed(f"{label}: the same upload name as {done[key]}; rename one of them")
                data = read_named(p, label, settings.decode.max_bytes)
                decode_upload(data, label, settings.decode)  # refuse what product_image would refuse
                sidecar = sidecar_override
                if sidecar is None:
                    sidecar = read_sidecar(p, label)
                    if sidecar is not None:
                        parse_details(sidecar, source=label + ".json")
                if sidecar is not None:  # details first: a sensor that sees the photo sees its details
                    store.put(key + ".json", sidecar, "application/json")
                store.put(key, data, mimetypes.guess_type(p.name)[0] or "application/octet-stream")
                done[key] = label
                if not quiet:
                    say(f"{label} -> {store.uri(key)}  (product {product_id_for(p.name)}"
                        f"{', with details' if sidecar is not None else ''})")
            except Exception as exc:  # noqa: BLE001 - one line per refused file; the others go on
                failed += 1
                if verbose_on(verbose):
                    import traceback

                    traceback.print_exc()
                msg = one_line(exc, verbose_on(verbose))
                say(f"adgen upload: {msg if msg.startswith(label) else f'{label}: {msg}'}")
        if not quiet:
            say(f"{len(done)} uploaded, {failed} refused -> {store.uri('uploads')}")
        if failed:
            raise typer.Exit(EXIT_FAILED)
