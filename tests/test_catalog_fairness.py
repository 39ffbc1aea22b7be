"""Issue 14: catalogs share each tick fairly; a huge catalog never starves a small one.

Small numbers here (a few hundred rows per tick); `bench/catalog_sensor.py` measures the
real sizes (a 100,000-row catalog beside a one-row catalog) against the previous sensor.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from adgen_dagster.sensors.catalogs import SLICE
from adgen_dagster.sensors import catalog_sensor
from adgen_dagster.settings import get_settings

from tests import sensor_ticks
from tests.sensor_ticks import instance  # noqa: F401 (the in-memory instance fixture)

pytestmark = pytest.mark.timeout(240)



def tick(instance, resource, cursor=None):
    return sensor_ticks.tick(catalog_sensor, instance, resource, cursor)


def catalog(store, name: str, files: list[str]) -> None:
    up = store.root / "uploads"
    up.mkdir(parents=True, exist_ok=True)
    for f in files:
        (up / f).write_bytes(b"x")  # the catalog sensor checks that the photo exists and is not empty, no more
    (store.root / "catalogs").mkdir(exist_ok=True)
    (store.root / "catalogs" / name).write_text("file,name\n" + "".join(f"{f},{f}\n" for f in files))


def by_catalog(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in result.run_requests:
        out[r.tags["adgen/catalog"]] = out.get(r.tags["adgen/catalog"], 0) + 1
    return out


def test_a_one_row_catalog_beside_a_big_one_is_done_in_the_next_tick(store, store_resource, instance, monkeypatch):
    n, per_tick = 1200, 150
    monkeypatch.setattr(get_settings().sensor, "catalog_rows_per_tick", per_tick)
    big = [f"big{i:05d}.jpg" for i in range(n)]
    catalog(store, "a-big.csv", big)  # sorts first: the old sensor did it first, whole, before anything else
    catalog(store, "z-one.csv", ["lonely.jpg"])
    counts, cursor = [], None
    for _ in range(12):
        result = tick(instance, store_resource, cursor)
        cursor = result.cursor
        counts.append(by_catalog(result))
        if not result.run_requests:
            break
    # equal shares in the first tick (the rest of the budget goes to the big one), then all of it
    assert counts[0] == {"catalogs/a-big.csv": per_tick - 1, "catalogs/z-one.csv": 1}
    left = n - (per_tick - 1)
    full, rest = divmod(left, per_tick)
    assert counts[1:] == [{"catalogs/a-big.csv": per_tick}] * full + [{"catalogs/a-big.csv": rest}] * bool(rest) + [{}]
    assert len(set(instance.get_dynamic_partitions("products"))) == n + 1
    for name, rows in (("a-big.csv", n), ("z-one.csv", 1)):
        report = json.loads(store.get(f"catalogs/{name}.report.json"))
        assert report["done"] and report["rows"] == rows and len(report["ok"]) == rows and not report["failed"]


def test_several_catalogs_get_equal_shares_and_a_slow_store_starves_none(store, store_resource, instance, monkeypatch):
    settings = get_settings().sensor
    monkeypatch.setattr(settings, "catalog_rows_per_tick", 90)
    catalog(store, "a.csv", [f"a{i}.jpg" for i in range(100)])
    catalog(store, "b.csv", [f"b{i}.jpg" for i in range(100)])
    catalog(store, "c.csv", [f"c{i}.jpg" for i in range(10)])
    first = by_catalog(tick(instance, store_resource))
    assert first == {"catalogs/a.csv": 40, "catalogs/b.csv": 40, "catalogs/c.csv": 10}  # 30 each, then c's unused 20 shared

    # No time left at all (a store so slow the tick is over at once): every unfinished catalog still moves on.
    monkeypatch.setattr(settings, "tick_seconds", 1e-9)
    monkeypatch.setattr(settings, "catalog_rows_per_tick", 2 * SLICE + 200)
    catalog(store, "d.csv", [f"d{i}.jpg" for i in range(2 * SLICE)])
    second = by_catalog(tick(instance, store_resource))
    share = (2 * SLICE + 200) // 3
    assert second == {"catalogs/a.csv": 60, "catalogs/b.csv": 60, "catalogs/d.csv": min(share, SLICE)}

