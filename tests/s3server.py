"""A real S3-protocol server on 127.0.0.1 for the tests (moto's server mode)."""

from __future__ import annotations

import boto3
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer
from adgen_dagster.definitions import location_resources

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


class S3TestServer:
    """Start, stop and restart on the same port; the objects survive a restart (moto keeps
    them in this process), which is what a real server coming back looks like."""

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadedMotoServer | None = None

    def start(self) -> "S3TestServer":
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, **CREDS)

    def resource(self, max_attempts: int = 2) -> S3Resource:
        return S3Resource(endpoint_url=self.endpoint, max_attempts=max_attempts, **CREDS)


def materialize_in_process(pid: str, bucket: str, endpoint: str, prefix: str = "") -> None:
    """Entry point for a child process: one whole-graph run of `pid` on the S3 store.

    Concurrent runs are separate processes in real deployments (one per run); doing the
    same here also keeps Dagster's process-wide logging setup out of the picture.
    """
    import dagster as dg

    from assets_defs import PIPELINE_ASSETS
    from resources.store_resource import StoreResource

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("products", [pid])
        resource = StoreResource(kind="s3", bucket=bucket, prefix=prefix,
                                 s3=S3Resource(endpoint_url=endpoint, max_attempts=3, **CREDS))
        result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(resource),
                                instance=instance, raise_on_error=False)
    raise SystemExit(0 if result.success else 1)
