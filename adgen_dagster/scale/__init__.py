"""Running the pipeline on many machines (docs/scale-out.md, deploy/).

Nothing here is imported by the code location itself: the modules are named in the
cluster's `dagster.yaml` (`launcher`) or started as processes (`worker`), and they need
the `scale` extra (`pip install -e '.[scale]'`: dagster-celery, dagster-postgres, Redis).
"""
