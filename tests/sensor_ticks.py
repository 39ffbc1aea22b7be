"""One sensor evaluation in a test, applying its partition requests the way the sensor daemon would
(the next tick then sees the products it registered), and the instance sensor tests tick against."""

from __future__ import annotations

import dagster as dg
import pytest


@pytest.fixture
def instance():
    """In-memory instance: sensors only need dynamic partitions, and it starts in milliseconds.
    A test module imports it to use it in place of conftest's on-disk `instance`."""
    inst = dg.DagsterInstance.ephemeral()
    yield inst
    inst.dispose()


def tick(sensor, instance, resource, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resource}) as ctx:
        result = sensor(ctx)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result
