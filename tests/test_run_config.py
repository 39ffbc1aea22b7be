"""Issue 14: a bad run config fails the run before any stage does work, in one line naming each field.

Dagster refuses what its config schema can express when the run is launched (the
Launchpad shows it): wrong types, unknown fields, values outside an enum. Ranges and
formats that only the core's pydantic models know are checked by the first step of the
run, for every stage at once (`assets_defs.run_config`).
"""

from __future__ import annotations

import dagster as dg
import pytest

from adgen_dagster.jobs import adgen_pipeline
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from assets_defs.run_config import problems

pytestmark = pytest.mark.timeout(120)


def failures(result) -> list[str]:
    return [e.step_failure_data.error.message.strip() for e in result.all_events if e.is_step_failure]


def test_bad_values_fail_the_first_step_naming_every_field(store, store_resource, instance, add_product):
    pid = add_product("lamp.jpg")
    config = {"ops": {
        "ad_creatives": {"config": {"sizes": "0x0"}},
        "composite": {"config": {"width": 100000}},
        "background": {"config": {"height": 3}},
        "retouched": {"config": {"brightness": 0.0}},
        "segmentation": {"config": {"backend": "birefnet", "birefnet": {"input_size": 7}}},
        "analysis": {"config": {"backend": "qwen-typo"}},
    }}
    result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(store_resource), instance=instance,
                            run_config=config, raise_on_error=False)
    assert not result.success
    [message] = failures(result)
    assert "\n" not in message
    assert "invalid run config, nothing was run: " in message
    for field in ("ops.ad_creatives.config.sizes: sizes: '0x0' is not WIDTHxHEIGHT",
                  "ops.composite.config.width: Input should be less than or equal to 8192 (got 100000)",
                  "ops.background.config.height: Input should be greater than or equal to 16 (got 3)",
                  "ops.retouched.config.brightness: Input should be greater than 0 (got 0.0)",
                  "ops.segmentation.config.birefnet.input_size:",
                  "ops.analysis.config.backend: unknown analyzer backend 'qwen-typo'; set ADGEN_ANALYZER (or the run "
                  "config field 'backend') to one of: classical, qwen2-vl"):
        assert field in message, (field, message)
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["product_image"]
    assert not result.get_asset_materialization_events()
    assert [o.key for o in store.list(f"products/{pid}/")] == [f"products/{pid}/upload.json"]


def test_good_values_pass_and_a_run_of_one_stage_checks_only_what_it_is_given(store_resource, instance, add_product):
    assert problems({"ops": {"composite": {"config": {"width": 512, "placement": "top"}},
                             "ad_creatives": {"config": {"sizes": "640x640"}}}}) == []
    pid = add_product("kettle.jpg")
    result = dg.materialize(PIPELINE_ASSETS[:1], partition_key=pid, resources=location_resources(store_resource), instance=instance,
                            run_config={"ops": {"product_image": {"config": {"max_side": 10}}}}, raise_on_error=False)
    [message] = failures(result)
    assert "ops.product_image.config.max_side: Input should be greater than or equal to 64 (got 10)" in message


def test_what_the_schema_can_say_is_refused_at_launch(store_resource):
    """As the Launchpad validates: Dagster's own config check, before a run exists."""
    job = dg.Definitions(assets=PIPELINE_ASSETS, jobs=[adgen_pipeline],
                         resources=location_resources(store_resource)).resolve_job_def("adgen_pipeline")
    assert dg.validate_run_config(job, {"ops": {"composite": {"config": {"placement": "top"}}}})
    for bad in ({"composite": {"config": {"placement": "sideways"}}},  # not one of the enum's values
                {"composite": {"config": {"width": "wide"}}},  # not an int
                {"ad_creatives": {"config": {"sizez": "640x640"}}}):  # not a field
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(job, {"ops": bad})
