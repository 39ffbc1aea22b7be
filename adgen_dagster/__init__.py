"""adgen-dagster: product photos to ad-ready images.

The package root stays import-light on purpose: `adgen_dagster.imaging` must be usable
without Dagster, so the Dagster definitions live in `adgen_dagster.definitions` and are
only imported by the code location (workspace.yaml) and the tests.
"""

__version__ = "0.1.0"
