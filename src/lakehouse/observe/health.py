"""Health from status records: pure functions, no I/O. The status reader (snapshot.py) reads the records, checks
whether their writers still run and measures the lag; this module judges each component and the whole.

A component is one of: producer, bronze, silver, gold, page. Its state:
  starting  expected (the runner lists it) but not reported yet, or its query has run no batch yet
  running   reporting, and keeping up: when behind its input, its last batch is recent
  stopping  stopping on request
  stopped   stopped cleanly (a process that said so before it ended)
  stale     alive but not keeping up: no report for HEARTBEAT_STALE_S (hung), or behind its input with no batch for
            STALE_S, or still starting after START_GRACE_S
  failed    its query failed (with Spark's reason), or its process is gone without having stopped (killed, crashed)
Gold folded into Silver's batches (the layers in one application) publishes no state of its own: it takes the state
of the component its process runs (silver).

The verdict: nothing running (exit 2) when no component's process runs; else unhealthy (exit 1) when a component is
stale or failed, or stopped while the runner still runs and expects it; else starting (exit 0) when one is still
starting; else healthy (exit 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COMPONENTS = ["producer", "bronze", "silver", "gold", "page"]
HEARTBEAT_STALE_S = 30.0  # queries report each second, the producer every 2 s, the page every 5 s
STALE_S = 120.0  # behind its input with no batch for this long: stale (Gold's economical trigger is about a minute)
START_GRACE_S = 300.0  # expected but not reported, or no first batch, for this long after the start: stale
LAG_UNITS = {"bronze": "offsets", "silver": "files", "gold": "versions"}
EXIT_OK, EXIT_UNHEALTHY, EXIT_NOTHING = 0, 1, 2
UNHEALTHY = ("stale", "failed")


@dataclass
class Component:
    name: str
    state: str
    reason: str | None = None
    pid: int | None = None
    batch: int | None = None
    last_batch_age_s: float | None = None
    report_age_s: float | None = None
    rows_per_s: float | None = None
    behind: int | None = None
    behind_unit: str | None = None
    behind_rows: int | None = None
    table_version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.state not in UNHEALTHY


@dataclass
class Lag:
    """What the lake's folders say (lag.py): each layer's behind-count and table version."""
    behind: dict[str, int | None] = field(default_factory=dict)  # silver: files, gold: versions
    behind_rows: dict[str, int | None] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)


def age_s(now_us: int, then_us: Any) -> float | None:
    return round((now_us - then_us) / 1e6, 3) if isinstance(then_us, (int, float)) else None


def host_of(name: str, records: dict[str, dict], alive: dict[str, bool]) -> dict | None:
    """The record of another live component in the same process that publishes a state (Gold in Silver's)."""
    pid = records[name].get("pid")
    for other, record in records.items():
        if other != name and record.get("pid") == pid and record.get("state") and alive.get(other):
            return record
    return None


def behind_of(name: str, record: dict, lag: Lag) -> tuple[int | None, int | None]:
    """(how far behind its input, rows behind) for a layer."""
    if name == "bronze":
        return record.get("offsets_behind"), record.get("offsets_behind")
    return lag.behind.get(name), lag.behind_rows.get(name)


def judge(name: str, records: dict[str, dict], alive: dict[str, bool], lag: Lag, now_us: int,
          pipeline: dict | None, pipeline_alive: bool) -> Component | None:
    """One component's state and figures; None for a component nobody expects and nobody reported."""
    record = records.get(name)
    expected = bool(pipeline and pipeline_alive and name in (pipeline.get("expected") or []))
    if record is None:
        if not expected:
            return None
        waited = age_s(now_us, pipeline.get("started_us")) or 0.0
        if waited > START_GRACE_S:
            return Component(name, "stale", f"has not reported {waited:.0f} s after the pipeline started")
        return Component(name, "starting", "not reported yet")
    state = record.get("state")
    beat = record.get("updated_us")
    if not state and alive.get(name):
        host = host_of(name, records, alive)
        if host is not None:
            state, beat = host["state"], host.get("updated_us")
    comp = Component(name, state or "running", record.get("reason"), record.get("pid"),
                     record.get("batch_id", record.get("batch")),
                     age_s(now_us, record.get("last_batch_us") or record.get("written_at_us")),
                     age_s(now_us, beat), record.get("rows_per_s", record.get("trades_per_s")),
                     table_version=lag.versions.get(name), details=details_of(name, record))
    if name in LAG_UNITS:
        comp.behind, comp.behind_rows = behind_of(name, record, lag)
        comp.behind_unit = LAG_UNITS[name]
    if not alive.get(name):
        if state not in ("stopped", "failed"):
            comp.state = "failed"
            comp.reason = (f"process {comp.pid} is gone without stopping (killed or crashed?); its last report, "
                           f"{comp.report_age_s:.0f} s ago, said {state or 'running'}")
        elif state == "stopped" and expected and pipeline.get("state") == "running":
            comp.state, comp.reason = "failed", f"stopped while the pipeline runs ({comp.reason or 'no reason'})"
        return comp
    if comp.state == "failed":
        return comp
    if comp.report_age_s is not None and comp.report_age_s > HEARTBEAT_STALE_S:
        comp.state, comp.reason = "stale", f"no report for {comp.report_age_s:.0f} s (hung?)"
    elif comp.state == "starting":
        started = age_s(now_us, record.get("started_us"))
        if started is not None and started > START_GRACE_S:
            comp.state, comp.reason = "stale", f"no batch {started:.0f} s after it started"
    elif comp.behind and (comp.last_batch_age_s is None or comp.last_batch_age_s > STALE_S):
        since = "ever" if comp.last_batch_age_s is None else f"{comp.last_batch_age_s:.0f} s"
        comp.state, comp.reason = "stale", f"{comp.behind} {comp.behind_unit} behind its input, no batch for {since}"
    return comp


def details_of(name: str, record: dict) -> dict[str, Any]:
    """What else a component shows: the producer's counters, a writer's figures, Gold's trade -> bar latency."""
    keep = {"producer": ["trades", "produced", "delivered", "gaps", "missing", "reconnects", "malformed",
                         "undelivered", "open_gaps", "pairs"],
            "bronze": ["input_rows", "batch_duration_ms", "max_offsets_behind"],
            "silver": ["input_rows", "batch_duration_ms", "bronze_rows", "inserted", "duplicates", "quarantined",
                       "silver_version"],
            "gold": ["input_rows", "batch_duration_ms", "trades", "bars", "silver_version"],
            "page": ["url", "records", "bad_records", "trades"]}.get(name, [])
    details = {k: record[k] for k in keep if record.get(k) is not None}
    if name == "silver" and record.get("bronze_rows") is not None:  # Spark counts its input in Bronze files
        details["input_rows"] = record["bronze_rows"]
    if name == "producer":  # every counter shown, 0 included
        details.update({k: record.get(k, 0) for k in ["trades", "gaps", "reconnects", "malformed", "undelivered"]})
    written, oldest, newest = (record.get(k) for k in ("written_at_us", "oldest_ingest_us", "newest_ingest_us"))
    if name == "gold" and isinstance(written, int) and isinstance(oldest, int) and isinstance(newest, int):
        details["trade_to_bar_s"] = {"min": round((written - newest) / 1e6, 3),
                                     "max": round((written - oldest) / 1e6, 3)}
    return details


def evaluate(records: dict[str, dict], alive: dict[str, bool], lag: Lag, now_us: int) -> dict[str, Any]:
    """The whole: every component judged, the verdict and the exit code (the module docstring)."""
    pipeline = records.get("pipeline")
    pipeline_alive = bool(alive.get("pipeline"))
    names = [n for n in COMPONENTS if n in records or n in ((pipeline or {}).get("expected") or [])]
    names += sorted(n for n in records if n not in COMPONENTS and n != "pipeline")
    comps = [c for c in (judge(n, records, alive, lag, now_us, pipeline, pipeline_alive) for n in names) if c]
    running = pipeline_alive or any(alive.get(c.name) for c in comps)
    if not running:
        verdict, code = "nothing running", EXIT_NOTHING
    elif any(not c.healthy for c in comps):
        verdict, code = "unhealthy", EXIT_UNHEALTHY
    elif any(c.state == "starting" for c in comps):
        verdict, code = "starting", EXIT_OK
    else:
        verdict, code = "healthy", EXIT_OK
    return {"verdict": verdict, "exit_code": code, "checked_at_us": now_us,
            "pipeline": {k: pipeline.get(k) for k in ("mode", "state", "started_us", "pid", "page_url")}
            if pipeline else None,
            "components": [dict(asdict(c), healthy=c.healthy) for c in comps]}
