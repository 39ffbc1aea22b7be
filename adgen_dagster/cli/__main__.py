"""`python -m adgen_dagster.cli ...` is the same as `adgen ...`."""

import sys

from adgen_dagster.cli import main

sys.exit(main())
