"""`adgen`: the pipeline from the command line, on the same core and settings as the assets.

    adgen cutout IN OUT.png          the product cut out (RGBA PNG), or --mask-only
    adgen run IN... --out DIR        every stage per photo, laid out like products/<pid>/
    adgen upload FILE...             into the configured store's uploads/ for the sensor
    adgen demo                       what `make demo` does
    adgen doctor                     the settings in force and what can run here

No command needs a Dagster instance except `demo`. Start-up is kept short: this package
imports only typer at load time; each command imports what it uses when it runs, and
`cutout` and `run` never import Dagster.

Exit codes: 0 ok, 1 an input failed or the configuration cannot run, 2 bad usage.
"""

from __future__ import annotations

import sys

from adgen_dagster.cli._app import app
from adgen_dagster.cli import cutout, demo, doctor, run, upload  # noqa: F401  (register the commands)


def main(argv: list[str] | None = None) -> int:
    """The `adgen` console script. Returns the exit code instead of raising SystemExit."""
    try:
        app(args=argv, prog_name="adgen")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
