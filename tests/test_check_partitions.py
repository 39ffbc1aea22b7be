"""Asset checks are recorded per product, on the product's own partition, also in batches.

A batch of four products, two of them tiny in their photos (the mask covers under 0.5 %
of the image, so `mask_coverage` fails for them): the UI's view of the check, through
GraphQL on the real code location, lists both failures on their own partitions and the
two good products as passed; every other check passes for all four.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_graphql.test.utils import execute_dagster_graphql
from PIL import Image, ImageDraw

from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from assets_defs.checks import AD_CONTRAST, ANALYSIS_SCHEMA, CUTOUT_QUALITY, MASK_COVERAGE
from tests.conftest import REPO
from tests.imagegen import encode, product_photo

SMALL = {
    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    # The cut-out quality gate would fail the tiny products at segmentation (a speck): off, so
    # that they reach the mask_coverage check (the gate's own check: tests/test_cutout_neural.py).
    "ops": {"segmentation": {"config": {"gate": False}},
            "background": {"config": {"width": 320, "height": 320}},
            "composite": {"config": {"width": 320, "height": 320}},
            "ad_creatives": {"config": {"sizes": "400x400"}}},
}

CHECK_STATUSES = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses { __typename
    ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions } } } } } } } }"""


def tiny_product(seed: int) -> bytes:
    im = Image.new("RGB", (400, 400), (245, 245, 245))
    ImageDraw.Draw(im).ellipse((195, 190, 205 + seed, 205 + seed), fill=(200, 40, 40))
    return encode(im, "PNG")


def check_statuses(instance) -> dict[str, dict[str, list[str]]]:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="adgen_dagster.definitions", working_directory=str(REPO)),
        location_name="adgen_dagster.definitions",
    )
    out = {}
    with (create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as ctx,
          ctx.create_request_context() as request):  # entered, as the webserver does per request
        for asset in ("mask", "analysis", "ad_creatives"):
            result = execute_dagster_graphql(request, CHECK_STATUSES, {"path": [asset]})
            assert not result.errors, result.errors
            for check in result.data["assetNodeOrError"]["assetChecksOrError"]["checks"]:
                st = check["partitionStatuses"]
                assert st["__typename"] == "AssetCheckDefaultPartitionStatuses", st
                out[check["name"]] = {"passed": sorted(st["succeededPartitions"]), "failed": sorted(st["failedPartitions"])}
    return out


def test_a_batch_with_two_bad_products_shows_each_failure_on_its_partition(store_resource, instance, add_product):
    good1 = add_product("good-1.jpg", data=encode(product_photo(size=(240, 240), seed=1), "JPEG"))
    bad1 = add_product("tiny-1.png", data=tiny_product(0))
    good2 = add_product("good-2.jpg", data=encode(product_photo(size=(240, 240), colour=(40, 80, 200), seed=2), "JPEG"))
    bad2 = add_product("tiny-2.png", data=tiny_product(4))
    result = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance, run_config=SMALL,
                            tags={"dagster/asset_partition_range_start": good1, "dagster/asset_partition_range_end": bad2})
    assert result.success

    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    mask = {e.partition: e.passed for e in evaluations if e.check_name == MASK_COVERAGE}
    assert mask == {good1: True, bad1: False, good2: True, bad2: False}
    failed = {e.partition: e.description for e in evaluations if not e.passed}
    assert set(failed) == {bad1, bad2} and all(f"product {p}: mask covers" in failed[p] for p in failed)

    everyone = sorted([good1, good2, bad1, bad2])
    assert check_statuses(instance) == {
        MASK_COVERAGE: {"passed": sorted([good1, good2]), "failed": sorted([bad1, bad2])},
        CUTOUT_QUALITY: {"passed": everyone, "failed": []},
        ANALYSIS_SCHEMA: {"passed": everyone, "failed": []},
        AD_CONTRAST: {"passed": everyone, "failed": []},
    }

    # A single-product run records its result on its partition too, and replaces the old one there.
    rerun = dg.materialize(PIPELINE_ASSETS, resources=location_resources(store_resource), instance=instance, run_config=SMALL,
                           partition_key=good1)
    assert rerun.success
    assert [e.event_specific_data.partition for e in rerun.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == MASK_COVERAGE] == [good1]
    assert check_statuses(instance)[MASK_COVERAGE] == {"passed": sorted([good1, good2]), "failed": sorted([bad1, bad2])}
