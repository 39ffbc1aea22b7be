"""`make demo`'s path: the sample catalog through the real job on a persistent instance."""

import os
import subprocess
import sys

from PIL import Image

from adgen_dagster.demo import sample_catalog
from adgen_dagster.product_ids import product_id_for
from adgen_dagster.sensors import upload_sensor
from adgen_dagster.settings import get_settings
from resources.store_resource import StoreResource
from tests.conftest import REPO


def test_demo_materializes_every_sample(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    env.pop("ADGEN_STORE__ROOT", None)
    proc = subprocess.run([sys.executable, "-m", "adgen_dagster.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = tmp_path / ".adgen" / "products"
    assert f"Outputs per product: {root}" in proc.stdout
    catalog = sample_catalog()
    assert len(catalog) >= 6
    for row in catalog:
        pid = product_id_for(row["upload"])
        for name, size in {"1080x1080": (1080, 1080), "1200x628": (1200, 628)}.items():
            with Image.open(root / pid / "ads" / f"{name}.png") as im:
                assert im.size == size
        assert (root / pid / "analysis.json").stat().st_size > 100
    # the runs are recorded in the instance the UI will read
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as inst:
        assert set(inst.get_dynamic_partitions("products")) == {product_id_for(r["upload"]) for r in catalog}
        runs = inst.get_runs()
        assert len(runs) == -(-len(catalog) // get_settings().batch_size) and all(r.is_success for r in runs)
        assert all(r.tags["dagster/sensor_name"] == "upload_sensor" and r.tags["dagster/run_key"] for r in runs)
        # `make ui` afterwards: its upload sensor (no cursor yet) finds nothing to run
        with dg.build_sensor_context(instance=inst, resources={"store": StoreResource(root=str(tmp_path / ".adgen"))}) as ctx:
            tick = upload_sensor(ctx)
        assert tick.run_requests == [] and tick.dynamic_partitions_requests == []
