"""The typer application and what every command shares: exit codes, one-line errors, settings."""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="adgen",
    help="Product photos to ad-ready images, from the command line (no Dagster instance needed).\n\n"
    "Settings come from ADGEN_* environment variables, as for the Dagster assets; "
    "see `adgen doctor` for the settings in force.\n\n"
    "Exit codes: 0 ok, 1 an input failed (or the configuration cannot run), 2 bad usage.",
    epilog="Examples:\n\n\b\n"
    "  adgen cutout shoe.jpg shoe.png            # the product on transparency\n"
    "  adgen run photos/ --out out/              # every stage, out/<product>/...\n"
    "  adgen upload shoe.jpg --details d.json    # into the store's uploads/\n"
    "  adgen doctor                              # what would run here\n"
    "  adgen COMMAND --help                      # more examples per command",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"verbose": False}

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback when something fails.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and results.")]


@app.callback()
def _root(verbose: Verbose = False) -> None:
    """Product photos to ad-ready images, from the command line."""
    _state["verbose"] = verbose


class Failed(Exception):
    """A failure whose message is the whole story (exit 1, one line, no traceback)."""


def say(msg: str) -> None:
    """A status line on stderr (stdout carries data: PNG bytes or the summary)."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# Errors whose message already says what is wrong and where (the file, the setting).
_TOLD = (Failed, ValueError, OSError, LookupError)  # BadImageError, DetailsError, BackendError, StoreError...


def one_line(exc: BaseException, verbose: bool = False) -> str:
    """The first line of the error; unexpected kinds get their type and a --verbose hint."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, KeyError):
        first = first.strip("'\"")
    from resources.object_store import StoreError  # stdlib only

    if isinstance(exc, (*_TOLD, StoreError)) and first:
        return first
    where = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return where if verbose else where + " (run with --verbose for the traceback)"


def verbose_on(flag: bool = False) -> bool:
    return flag or _state["verbose"]


def report_error(command: str, exc: BaseException, verbose: bool) -> None:
    if verbose_on(verbose):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    say(f"adgen {command}: {one_line(exc, verbose_on(verbose))}")


def _passthrough() -> tuple[type[BaseException], ...]:
    """Exceptions that typer/click turn into exit codes themselves (usage errors: 2)."""
    import importlib

    kinds: list[type[BaseException]] = [typer.Exit, typer.Abort, typer.BadParameter, SystemExit]
    for name in ("typer._click.exceptions", "click.exceptions"):  # typer >= 0.2x vendors click
        try:
            mod = importlib.import_module(name)
            kinds += [mod.ClickException, mod.Abort, mod.Exit]
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


@contextmanager
def reporting(command: str, verbose: bool = False) -> Iterator[None]:
    """Any error inside becomes one line on stderr and exit code 1 (a traceback with --verbose)."""
    try:
        yield
    except _passthrough():
        raise
    except KeyboardInterrupt:
        say(f"adgen {command}: interrupted")
        raise typer.Exit(130) from None
    except BrokenPipeError:  # `adgen cutout - - | head`: the reader went away
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as exc:  # noqa: BLE001 - the whole point: one line, not a traceback
        report_error(command, exc, verbose)
        raise typer.Exit(EXIT_FAILED) from None


def load_settings(**overrides: Optional[str]):
    """`AdgenSettings` from the environment (as the assets read them), with command-line overrides."""
    from pydantic import ValidationError

    from adgen_dagster.settings import AdgenSettings

    try:
        settings = AdgenSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ADGEN_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise Failed(f"the settings in the environment are invalid: {problems}") from None
    update = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=update) if update else settings


def backend_option(kind: str, table_name: str, setting: str):
    """A typer Option for a backend name, checked against the registry (bad name: exit 2)."""

    def check(value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        from adgen_dagster import backends

        table = getattr(backends, table_name)
        if value not in table:
            raise typer.BadParameter(f"unknown {kind} backend {value!r}; available: {', '.join(sorted(table))}")
        return value

    return typer.Option(f"--{kind}", metavar="NAME", callback=check,
                        help=f"{kind.capitalize()} backend (default: {setting}, else the built-in default).")


def is_dash(p: Path | str) -> bool:
    return str(p) == "-"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that no reader ever sees half of it (temp file + rename)."""
    import os

    from resources.safe_files import temp_name

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / temp_name(path.name))  # within the name limit even for a 255-byte name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
