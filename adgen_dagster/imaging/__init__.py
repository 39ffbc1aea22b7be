"""The Dagster-free core: pure functions on PIL images and numpy arrays.

Nothing in this package imports Dagster or torch; every stage takes an image and a
small pydantic parameter model and returns an image (or a model), so the same code
serves the assets, the benchmarks and the tests.
"""
