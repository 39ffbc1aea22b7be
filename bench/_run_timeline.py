"""Where a run's wall time goes, from the instance's own records: created -> queued -> dequeued ->
process up (RUN_START) -> steps -> success, per run, and how many events each run wrote.

Used by the UI-path benchmarks (`drop_to_done.py`) after the runs ended, with the DAGSTER_HOME
that `dg dev` used; reads the instance (SQLite) directly, so it costs the runs nothing.
"""

from __future__ import annotations

from pathlib import Path

from _util import print_table

MARKS = ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE")


def timeline(home: Path, t0: float) -> list[dict]:
    """One dict per run (oldest first): seconds after `t0` of each mark, step seconds, event count."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(home))
    try:
        out = []
        for record in sorted(instance.get_run_records(), key=lambda r: r.create_timestamp.timestamp()):
            run = record.dagster_run
            events = instance.all_logs(run.run_id)
            marks: dict[str, float] = {"created": record.create_timestamp.timestamp() - t0}
            names = {DagsterEventType[m].value: m for m in MARKS}  # RUN_START's value is "PIPELINE_START"...
            steps: dict[str, list[float]] = {}
            for e in events:
                kind = e.dagster_event.event_type_value if e.dagster_event else None
                if kind in names and names[kind] not in marks:
                    marks[names[kind]] = e.timestamp - t0
                if kind in (DagsterEventType.STEP_START.value, DagsterEventType.STEP_SUCCESS.value,
                            DagsterEventType.STEP_FAILURE.value):
                    steps.setdefault(e.step_key, []).append(e.timestamp)
            marks["first_step"] = min((v[0] for v in steps.values()), default=t0) - t0
            marks["last_step"] = max((v[-1] for v in steps.values()), default=t0) - t0
            tags = run.tags
            size = 1 if "dagster/partition" in tags else None
            out.append({"run": run.run_id[:8], "status": run.status.value, "marks": marks, "events": len(events),
                        "steps": {k: round(v[-1] - v[0], 1) for k, v in steps.items()},
                        "range": (tags.get("dagster/asset_partition_range_start"),
                                  tags.get("dagster/asset_partition_range_end")), "size": size})
        return out
    finally:
        instance.dispose()


def print_timeline(rows: list[dict]) -> None:
    def at(r: dict, k: str) -> str:
        v = r["marks"].get(k)
        return "" if v is None else f"{v:.1f}"

    table = []
    for r in rows:
        m = r["marks"]
        up = m.get("RUN_START", 0) - m.get("RUN_STARTING", m.get("RUN_DEQUEUED", 0))
        table.append([r["run"], r["status"], at(r, "created"), at(r, "RUN_DEQUEUED"), at(r, "RUN_START"),
                      at(r, "first_step"), at(r, "last_step"), at(r, "RUN_SUCCESS") or at(r, "RUN_FAILURE"),
                      f"{up:.1f}", r["events"]])
    print_table(["run", "status", "created", "dequeued", "process up", "first step", "last step", "ended",
                 "start->up s", "events"], table, title="Runs, seconds after the drop (from the instance's event log)")
    if rows:
        steps: dict[str, float] = {}
        for r in rows:
            for k, v in r["steps"].items():
                steps[k] = steps.get(k, 0.0) + v
        print("step seconds summed over runs: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(steps.items(), key=lambda x: -x[1])))
