"""The code location loads, validates, and has the graph the design describes."""

import os
import subprocess
import sys

import dagster as dg

from adgen_dagster.definitions import defs as load_defs
from tests.conftest import REPO

defs = load_defs()  # the code location as Dagster loads it


def test_definitions_load_and_graph_matches_design():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"product_image", "nobg_image", "mask", "background", "composite", "retouched", "analysis", "ad_creatives"}

    def parents(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("nobg_image") == parents("mask") == {"product_image"}
    assert parents("background") == {"product_image"}
    assert {"nobg_image", "background"} <= parents("composite")
    assert "composite" in parents("retouched") and "retouched" in parents("analysis")
    assert parents("ad_creatives") == {"retouched", "analysis", "product_image"}  # it reads details.json too
    assert not graph.get(dg.AssetKey("mask")).child_keys  # a leaf: composite uses nobg_image's alpha (README graph)
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def.name == "products"
    job = defs.resolve_job_def("adgen_pipeline")
    assert job.executor_def.name == "in_process"


def test_dagster_cli_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_the_cpu_path_never_imports_torch():
    """The neural libraries are optional: loading the code location, the backend registry (which imports
    every backend class, the neural ones included) and the CPU stages must not import them."""
    import subprocess
    import sys

    code = ("import sys; import adgen_dagster.definitions as d; d.defs(); from adgen_dagster.stage_runner import chain_for; "
            "from adgen_dagster.settings import get_settings as g; s = g(); "
            "from adgen_dagster import backends; from adgen_dagster.models.host import host_for; "
            "print('NEURAL', sorted(n for t, _ in backends.TABLES.values() for n, b in t.items() if b.params)); "
            "h = host_for(s.gpu); [backends.resolve(k, n, host=h) for k, (t, _) in backends.TABLES.items() for n in t]; "
            "chain_for(s.model_copy(update={'segmenter': 'classical', 'background': 'studio', 'analyzer': 'classical'})); "
            "from PIL import Image; from adgen_dagster.backends import get_segmenter; "
            "get_segmenter(s.segmenter)(Image.new('RGB', (64, 48), (200, 90, 30)), s.segment); "
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert "NEURAL ['birefnet', 'flux', 'qwen2-vl']" in lines  # the registry holds them, and built them
    assert lines[-1] == "[]"


def test_every_job_of_the_location_runs_in_process():
    """The implicit asset job (UI Materialize, Catalog backfills) too, not only adgen_pipeline."""
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert implicit.executor_def.name == "in_process"
    for job in defs.resolve_all_job_defs():
        assert job.executor_def.name == "in_process", job.name


def test_the_location_reads_its_settings_when_loaded_and_warns_nothing(monkeypatch):
    """`defs` is built when Dagster loads it (`@dg.definitions`), from the settings in force then,
    with the resources bound there; building it raises no Dagster beta or preview warning."""
    import warnings

    from adgen_dagster.settings import get_settings

    monkeypatch.setenv("ADGEN_BATCH_SIZE", "3")
    monkeypatch.setenv("ADGEN_RETOUCH__CONTRAST", "1.3")
    monkeypatch.setenv("ADGEN_SENSOR__INTERVAL_SECONDS", "17")
    monkeypatch.setenv("ADGEN_FLUX__STEPS", "3")
    get_settings.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_defs()
            dg.Definitions.validate_loadable(loaded)
    finally:
        get_settings.cache_clear()
    assert [str(w.message) for w in caught if issubclass(w.category, (dg.BetaWarning, dg.PreviewWarning))] == []
    retouched = loaded.resolve_assets_def("retouched")
    assert retouched.backfill_policy.max_partitions_per_run == 3
    assert retouched.op.config_schema.config_type.fields["contrast"].default_value == 1.3
    assert defs.resolve_assets_def("retouched").backfill_policy.max_partitions_per_run != 3  # loaded before
    sensors = {s.name: s for s in loaded.sensors}
    assert sensors["upload_sensor"].minimum_interval_seconds == 17
    assert sensors["split_failed_batches"].minimum_interval_seconds == 17
    flux = loaded.resolve_assets_def("background").op.config_schema.config_type.fields["flux"]
    assert flux.config_type.fields["steps"].default_value == 3  # a backend's own settings too
    assert {"store", "gpu"} <= set(loaded.resources)
    assert [a.op.name for a in loaded.assets if a.resource_defs] == []  # no asset binds a resource of its own
