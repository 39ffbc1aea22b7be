"""`adgen upload`: photos (and their details) into the configured store's `uploads/`.

Each photo is checked the way the `product_image` stage will read it (decoded with the
same settings) before anything is written, so a bad file is refused here, with one line
naming it, instead of failing its partition later. The details sidecar is written
before the photo, so whoever picks the photo up (the upload sensor) sees its details.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from adgen_dagster.cli._app import EXIT_FAILED, Failed, Quiet, Verbose, app, load_settings, one_line, reporting, say, verbose_on
from adgen_dagster.cli.cutout import IMAGE_SUFFIXES

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
    from adgen_dagster.imaging.details import DetailsError, parse_details

    text = value.strip()
    source = "--details"
    if not text.startswith("{"):
        path = Path(text[1:] if text.startswith("@") else text)
        if not path.is_file():
            raise typer.BadParameter("give a JSON object or the path of a JSON file", param_hint="--details")
        source, data = str(path), path.read_bytes()
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
            if not p.exists():
                raise typer.BadParameter(f"{str(p)!r} does not exist", param_hint="FILE")
            if p.is_dir():
                found = [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
                if not found:
                    say(f"adgen upload: no photos in {p}")
                paths += found
            else:
                paths.append(p)
        if not paths:
            raise Failed("nothing to upload")

        from adgen_dagster.imaging.decode import decode_upload
        from adgen_dagster.imaging.details import parse_details
        from adgen_dagster.product_ids import product_id_for

        settings = load_settings()
        store = open_store(settings)
        done: dict[str, str] = {}
        failed = 0
        for p in paths:
            try:
                key = f"uploads/{p.name}"
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    raise Failed(f"{p}: not an image file name (expected one of {', '.join(IMAGE_SUFFIXES)})")
                if key in done:
                    raise Failed(f"{p}: the same upload name as {done[key]}; rename one of them")
                data = p.read_bytes()
                decode_upload(data, str(p), settings.decode)  # refuse what product_image would refuse
                sidecar = sidecar_override
                if sidecar is None:
                    side = p.with_name(p.name + ".json")
                    if side.is_file():
                        sidecar = side.read_bytes()
                        parse_details(sidecar, source=str(side))
                if sidecar is not None:  # details first: a sensor that sees the photo sees its details
                    store.put(key + ".json", sidecar, "application/json")
                store.put(key, data, mimetypes.guess_type(p.name)[0] or "application/octet-stream")
                done[key] = str(p)
                if not quiet:
                    say(f"{p} -> {store.uri(key)}  (product {product_id_for(p.name)}"
                        f"{', with details' if sidecar is not None else ''})")
            except Exception as exc:  # noqa: BLE001 - one line per refused file; the others go on
                failed += 1
                if verbose_on(verbose):
                    import traceback

                    traceback.print_exc()
                say(f"adgen upload: {one_line(exc, verbose_on(verbose))}")
        if not quiet:
            say(f"{len(done)} uploaded, {failed} refused -> {store.uri('uploads')}")
        if failed:
            raise typer.Exit(EXIT_FAILED)
