"""`adgen demo`: what `make demo` does (the sample catalog through the real Dagster job)."""

from __future__ import annotations

import typer

from adgen_dagster.cli._app import Verbose, app, reporting

EPILOG = """\
Examples:

\b
  adgen demo                                  # store .adgen/, Dagster instance .dagster_home/
  DAGSTER_HOME=/tmp/home ADGEN_STORE__ROOT=/tmp/store adgen demo

Unlike the other commands this one runs Dagster: each sample is a product partition of a
persistent instance, so the runs can be browsed afterwards with `make ui`. To run the same
stages without Dagster, see `adgen run --samples --out DIR`.
"""


@app.command(epilog=EPILOG)
def demo(verbose: Verbose = False) -> None:
    """What `make demo` does: the sample products through the Dagster job."""
    with reporting("demo", verbose):
        from adgen_dagster.demo import main

        code = main([])
    raise typer.Exit(code)
