"""One sensor evaluation in a test, applying its partition requests the way the sensor daemon would
(the next tick then sees the products it registered)."""

from __future__ import annotations

import dagster as dg


def tick(sensor, instance, resource, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resource}) as ctx:
        result = sensor(ctx)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result
