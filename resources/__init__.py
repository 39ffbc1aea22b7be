"""Dagster resources and the storage they wrap: object store (local | S3), IO helpers."""
