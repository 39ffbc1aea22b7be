"""`adgen run`: every stage for each photo, without Dagster, laid out like `products/<pid>/`.

The stages are the registry's steps (`adgen_dagster.stages`), the very functions the
assets run (bytes in, bytes out, the same encoders), chained in memory in graph order by
`stage_runner.run_chain`, each stage given the files the previous ones produced. So the
same photo, details and settings give the same files, byte for byte, as a Dagster run,
under the same product id (`product_id_for` of the file name, as if it were uploaded
under `uploads/`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, List, Optional

import typer

from adgen_dagster.cli._app import (
    EXIT_FAILED,
    Failed,
    Quiet,
    Verbose,
    app,
    backend_option,
    load_settings,
    one_line,
    reporting,
    say,
    verbose_on,
    write_atomic,
)
from adgen_dagster.cli.inputs import Inputs, printable, read_named, read_sidecar, scan_folder

EPILOG = """\
Examples:

\b
  adgen run shoe.jpg --out out/                        # out/shoe/product_image.png ... ads/1080x1080.png|html
  adgen run photos/ --out out/ --background studio     # every photo in the folder
  adgen run shoe.jpg --out out/ --headline "Summer sale"
  adgen run --samples --out out/                       # the bundled sample catalog (as `adgen demo`)
  adgen run --catalog catalog.json --out out/          # rows of {"photo", "upload", "details"}

A photo's details come from a sidecar next to it, `<photo>.json` (as in the store's uploads/).
The product id is the one the photo would get as an upload (`red-shoe.jpg` -> `red-shoe`).
Outputs for a photo are written only when all of its stages succeed.
"""


@dataclass
class Job:
    label: str  # what the user named (messages, table; printable)
    upload_name: str  # its name under uploads/: gives the product id
    path: Path
    sidecar: Optional[bytes] = None  # details given by a catalog
    error_name: str = ""  # names the photo in error messages (default: label)
    sidecar_next_to: bool = False  # read `<photo>.json` beside the photo when it runs

    @property
    def name_in_errors(self) -> str:
        return self.error_name or self.label


@dataclass
class Outcome:
    job: Job
    pid: str = ""
    ok: bool = False
    error: str = ""
    seconds: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)


def catalog_jobs(catalog: Path | None) -> list[Job]:
    """Rows `{"photo": path relative to the catalog, "upload": name, "details": {...}}`."""
    from adgen_dagster.demo import SAMPLES, sample_catalog

    if catalog is None:
        rows, base, source = sample_catalog(), Path(str(SAMPLES)), "the bundled sample catalog"
    else:
        source = str(catalog)
        try:
            rows = json.loads(read_named(catalog, str(catalog), 64 * 1024 * 1024).decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Failed(f"{catalog}: not valid UTF-8 JSON ({exc})") from None
        base = catalog.parent
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("photo"), str) for r in rows):
        raise Failed(f"{source}: expected a JSON list of objects, each with a \"photo\" path")
    jobs = []
    for row in rows:
        photo = base / row["photo"]
        details = row.get("details")
        sidecar = None if details is None else json.dumps(details, ensure_ascii=False, indent=2).encode("utf-8")
        upload = str(row.get("upload") or photo.name)
        label = row["photo"] if catalog is None else str(photo)
        jobs.append(Job(label, upload, photo, sidecar, error_name=upload))  # errors name it as the assets do
    return jobs


def collect(inputs: list[Path]) -> tuple[list[Job], list[str]]:
    """Photos named or found in folders (as `inputs.scan_folder` takes them); sidecars are read when each runs."""
    jobs, skipped = [], []
    for p in inputs:
        if not os.path.lexists(p):
            raise typer.BadParameter(f"{printable(str(p))!r} does not exist", param_hint="IN")
        photos, notes = scan_folder(p) if p.is_dir() else ([p], [])
        skipped += notes
        jobs += [Job(printable(str(f)), f.name, f, sidecar_next_to=True) for f in photos]
    return jobs, skipped


def with_headline(sidecar: Optional[bytes], source: str, headline: str) -> bytes:
    """The sidecar with its headline replaced (validated like any sidecar)."""
    from adgen_dagster.imaging.details import parse_details

    details = parse_details(sidecar, source=source)
    return json.dumps({**details.model_dump(mode="json"), "headline": headline}, ensure_ascii=False).encode("utf-8")


def run_one(job: Job, chain, headline: Optional[str], on_stage: Callable[[int, str], None], max_bytes: int) -> Outcome:
    """All stages for one photo, in memory; raises on the first failure (nothing is written).

    Each stage gets the images the previous ones made as they are, not as PNG bytes to
    decode (the same pixels: PNG is lossless); `res.files` holds them until written."""
    from adgen_dagster.product_ids import product_id_for
    from adgen_dagster.stage_runner import run_chain
    from adgen_dagster.stages import StageContext

    res = Outcome(job, pid=product_id_for(job.upload_name))
    sidecar = read_sidecar(job.path, job.label) if job.sidecar_next_to else job.sidecar
    if headline is not None:
        sidecar = with_headline(sidecar, job.name_in_errors + ".json", headline)
    upload = read_named(job.path, job.label, max_bytes)
    done = run_chain(chain, StageContext(res.pid, job.name_in_errors), {"upload": upload, "sidecar": sidecar or b""},
                     on_stage)
    res.files, res.meta = done.files, done.metadata
    return res


@app.command(epilog=EPILOG)
def run(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder: DIR/<product id>/... as in the store's products/<pid>/.", show_default=False)],
    inputs: Annotated[Optional[List[Path]], typer.Argument(metavar="IN", help="Photo file(s) or folder(s).", show_default=False)] = None,
    segmenter: Annotated[Optional[str], backend_option("segmenter", "SEGMENTERS", "ADGEN_SEGMENTER")] = None,
    background: Annotated[Optional[str], backend_option("background", "BACKGROUNDS", "ADGEN_BACKGROUND")] = None,
    analyzer: Annotated[Optional[str], backend_option("analyzer", "ANALYZERS", "ADGEN_ANALYZER")] = None,
    headline: Annotated[Optional[str], typer.Option("--headline", metavar="TEXT", help="Ad headline for every photo (replaces the details' headline).")] = None,
    catalog: Annotated[Optional[Path], typer.Option("--catalog", metavar="FILE", help="A catalog JSON: a list of {photo, upload, details} rows.", exists=True, dir_okay=False)] = None,
    samples: Annotated[bool, typer.Option("--samples", help="Run the bundled sample catalog (the photos `adgen demo` uses).")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Every stage for each photo without Dagster, into DIR/<product>/."""
    with reporting("run", verbose):
        inputs = list(inputs or [])
        if not inputs and catalog is None and not samples:
            raise typer.BadParameter("give at least one photo or folder (or --catalog FILE, or --samples)", param_hint="IN")
        if out.exists() and not out.is_dir():
            raise typer.BadParameter(f"{str(out)!r} is a file, not a folder", param_hint="--out")
        if headline is not None and len(headline.strip()) > 200:
            raise typer.BadParameter("at most 200 characters", param_hint="--headline")

        jobs, skipped = collect(inputs)
        if catalog is not None or samples:
            if samples:
                jobs += catalog_jobs(None)
            if catalog is not None:
                jobs += catalog_jobs(catalog)
        settings = load_settings(segmenter=segmenter, background=background, analyzer=analyzer)
        from adgen_dagster.stage_runner import chain_for

        chain = chain_for(settings)  # unknown ADGEN_* backends fail here, naming the setting
        for note in skipped:
            say(note)
        if not jobs:
            raise Failed(f"no photos found in {', '.join(str(p) for p in inputs)}")

        outcomes = process(jobs, chain, headline, out, quiet, verbose_on(verbose), settings.decode.max_bytes)
        summary(outcomes, out, settings)
        if any(not o.ok for o in outcomes):
            raise typer.Exit(EXIT_FAILED)


def write_files(out_dir: Path, files: dict) -> list:
    """Encode (PNG at each output's level) and write a product's files on the encoder threads; the futures."""
    from adgen_dagster.encoding import encode_output, encoder_pool

    def one(name: str, value) -> None:
        write_atomic(out_dir / name, encode_output(name, value))

    return [encoder_pool().submit(one, name, value) for name, value in files.items()]


@dataclass
class _Pending:
    """A photo whose stages are done and whose files are being encoded and written."""
    res: Outcome
    task: int
    name: str
    started: float
    writes: list = field(default_factory=list)


def process(jobs: list[Job], chain, headline, out: Path, quiet: bool, verbose: bool, max_bytes: int) -> list[Outcome]:
    """Each photo's stages on a photo thread, a few photos at once (`adgen_dagster.product_threads`); its files are
    encoded and written on the encoder threads while the next photos' stages run (zlib and file
    writes release the GIL). Results, messages and the table keep the photos' order."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adgen_dagster.product_threads import overlapped, product_workers
    from adgen_dagster.product_ids import product_id_for
    steps = len(chain) + 1  # + writing the files
    outcomes: list[Outcome] = []
    seen: dict[str, str] = {}
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )

    def emit(msg: str) -> None:  # one line, never wrapped, above the bars
        if quiet:
            say(msg)
        else:
            progress.console.print(msg, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def failed(res: Outcome, exc: BaseException, task: int, name: str) -> Outcome:
        if verbose:
            import traceback

            traceback.print_exception(exc)
        job = res.job
        msg = one_line(exc, verbose)
        named = msg.startswith((job.label, job.name_in_errors))
        res = Outcome(job, pid=res.pid, error=msg if named else f"{job.label}: {msg}")
        emit(f"adgen run: {res.error}")
        progress.update(task, description=f"{name}  FAILED")
        return res

    def finish(p: _Pending) -> None:
        res = p.res
        try:
            for f in p.writes:
                f.result()
            if res.ok:
                progress.update(p.task, completed=steps, description=f"{p.name}  ok")
        except Exception as exc:  # noqa: BLE001 - e.g. disk full: this photo failed, the others go on
            res = failed(res, exc, p.task, p.name)
        res.seconds = time.perf_counter() - p.started
        outcomes.append(res)
        progress.advance(overall)

    sources = Inputs()
    for job in jobs:
        sources.add(job.path, job.label)

    def start(job: Job) -> _Pending:  # on a photo thread (product_threads): stages, then files handed to the encoders
        name = job.label if len(job.label) <= 40 else "..." + job.label[-37:]
        task = progress.add_task(name, total=steps)

        def on_stage(i: int, stage: str) -> None:
            progress.update(task, completed=i, description=f"{name}  {stage}")

        current = _Pending(Outcome(job, pid=product_id_for(job.upload_name)), task, name, time.perf_counter())
        try:
            if id(job) in clashes:
                raise Failed(clashes[id(job)])
            current.res = run_one(job, chain, headline, on_stage, max_bytes)
            on_stage(steps - 1, "write")
            for fname in current.res.files:
                sources.guard(out / current.res.pid / fname, job.label)  # never over a photo being read
            current.writes = write_files(out / current.res.pid, current.res.files)
            current.res.ok = True
        except Exception as exc:  # noqa: BLE001 - one line per failed photo; the others go on
            current.res = failed(current.res, exc, task, name)
        return current

    clashes: dict[int, str] = {}  # photos whose product id an earlier photo already has (decided in order)
    for job in jobs:
        pid = product_id_for(job.upload_name)
        if pid in seen:
            clashes[id(job)] = f"{job.label}: gives the product id {pid!r}, as {seen[pid]} does; rename one of them"
        else:
            seen[pid] = job.label
    with progress:
        overall = progress.add_task(f"{len(jobs)} photo(s)", total=len(jobs))
        overlapped(jobs, start, finish, product_workers())
    return outcomes


def summary(outcomes: list[Outcome], out: Path, settings) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"adgen run: {settings.segmenter} / {settings.background} / {settings.analyzer}", title_justify="left")
    for col, kw in (("input", {"overflow": "fold"}), ("product", {"overflow": "fold"}), ("result", {"overflow": "fold"}),
                    ("seconds", {"justify": "right"}), ("tone", {}), ("files", {"justify": "right"})):
        table.add_column(col, **kw)
    for o in outcomes:
        tone = o.meta.get("analysis", {}).get("tone", "") if o.ok else ""
        table.add_row(o.job.label, o.pid, "ok" if o.ok else f"FAILED: {o.error}", f"{o.seconds:.1f}", str(tone),
                      str(len(o.files)) if o.ok else "", style=None if o.ok else "red")
    console.print(table)
    ok = sum(o.ok for o in outcomes)
    root = out.resolve()
    console.print(f"{ok} ok, {len(outcomes) - ok} failed. Outputs per product: {root}/<product>/", soft_wrap=True, highlight=False)
