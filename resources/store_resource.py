"""The Dagster resource that hands assets an `ObjectStore` and the result cache.

`kind` switches the backend (one setting, no asset changes). For S3 the client comes from
the ecosystem's `dagster_aws.s3.S3Resource` (botocore's standard retry mode), nested here
so the Launchpad shows it; credentials reach it through `dagster.EnvVar`, which the UI
shows by variable name, never by value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from adgen_dagster.settings import StoreSettings, get_settings
from resources.cache import ResultCache
from resources.object_store import LocalObjectStore, ObjectStore, StoreError

# Run launchers that execute runs on other machines (Celery workers, Kubernetes jobs, containers).
REMOTE_LAUNCHER_MODULES = ("dagster_celery", "dagster_k8s", "dagster_docker", "dagster_aws", "adgen_dagster.scale")


def _default(name: str):
    return Field(default_factory=lambda: getattr(get_settings().store, name),
                 description=StoreSettings.model_fields[name].description)


def s3_resource_from_env() -> S3Resource:
    """The S3 client settings from ADGEN_STORE__* and the standard AWS_* variables.

    Keys are passed as `EnvVar`s only when set; otherwise boto3's own chain applies
    (AWS_PROFILE, ~/.aws, instance or pod roles).
    """
    st = get_settings().store
    creds = {}
    for field_name, var in (("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                            ("aws_session_token", "AWS_SESSION_TOKEN")):
        if os.environ.get(var):
            creds[field_name] = dg.EnvVar(var)
    return S3Resource(endpoint_url=st.endpoint_url or None, region_name=st.region or None,
                      max_attempts=st.max_attempts, **creds)


class StoreResource(dg.ConfigurableResource):
    """Where inputs are read and outputs written, and whether results are cached."""

    kind: Literal["local", "s3"] = _default("kind")
    root: str = _default("root")
    bucket: str = _default("bucket")
    prefix: str = _default("prefix")
    cache: bool = _default("cache")
    s3: Optional[S3Resource] = None

    _store: Optional[ObjectStore] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_store_is_shared(self.kind, self.root, context.instance)

    def get_store(self) -> ObjectStore:
        """One store (and so one S3 client, which is costly to build) per resource instance."""
        if self._store is None:
            self._store = self._open()
        return self._store

    def _open(self) -> ObjectStore:
        if self.kind == "local":
            return LocalObjectStore(self.root)
        from resources.s3_store import S3ObjectStore

        s3 = self.s3
        if s3 is None:  # outside Dagster (CLI, demo): plain values, boto3 reads AWS_* itself
            st = get_settings().store
            s3 = S3Resource(endpoint_url=st.endpoint_url or None, region_name=st.region or None, max_attempts=st.max_attempts)
        return S3ObjectStore(s3.get_client(), self.bucket, self.prefix, s3.endpoint_url)

    def get_cache(self) -> ResultCache:
        return ResultCache(self.get_store(), enabled=self.cache)


def check_store_is_shared(kind: str, root: str, instance: Optional[dg.DagsterInstance]) -> None:
    """Refuse a local store under the working directory when runs execute on other machines.

    Each worker would keep its own outputs and cache in its own folder, where the sensors and
    the other workers never see them. S3 (or a folder every machine mounts at the same
    absolute path) is shared; a relative `.adgen` never is.
    """
    if kind != "local" or instance is None or Path(root).expanduser().is_absolute():
        return
    launcher = type(instance.run_launcher)
    if any(cls.__module__.startswith(REMOTE_LAUNCHER_MODULES) for cls in launcher.__mro__):
        raise StoreError(
            f"the local store {root!r} is a folder on this worker only, but runs are launched on many machines "
            f"({launcher.__name__}); set ADGEN_STORE__KIND=s3 (with ADGEN_STORE__BUCKET) on every machine, or point "
            "ADGEN_STORE__ROOT at an absolute path that every machine mounts"
        )
