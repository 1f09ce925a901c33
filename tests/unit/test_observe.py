"""Status publication and health (lakehouse.observe): the status files, a query's progress as status fields, the lag
the lake's folders show, health from status dicts, the metrics text, and `infra/status.py`'s exit codes with real
processes publishing (alive, killed, none, starting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.observe import status
from lakehouse.observe.health import HEARTBEAT_STALE_S, STALE_S, START_GRACE_S, Lag, evaluate
from lakehouse.observe.lag import LogReader, changes_data, delta_source_through, sink_files_position
from lakehouse.observe.queries import QueryReporter, progress_fields
from lakehouse.page.metrics import status_families
from tests.helpers import PYTHON, REPO_ROOT

NOW = 1_800_000_000_000_000

# A Kafka source's progress as Spark 3.5 reports it (trimmed)
PROGRESS = {
    "id": "q", "runId": "r", "name": "bronze", "timestamp": "2027-01-15T08:00:00.250Z", "batchId": 41,
    "numInputRows": 120, "inputRowsPerSecond": 60.0, "processedRowsPerSecond": 95.5,
    "durationMs": {"addBatch": 900, "latestOffset": 5, "triggerExecution": 1250},
    "sources": [{"description": "KafkaV2[Subscribe[t]]", "startOffset": {"t": {"0": 100, "1": 7}},
                 "endOffset": {"t": {"0": 160, "1": 67}}, "latestOffset": {"t": {"0": 165, "1": 70}},
                 "numInputRows": 120, "metrics": {"avgOffsetsBehindLatest": "4.0", "maxOffsetsBehindLatest": "5",
                                                  "minOffsetsBehindLatest": "3"}}],
}


@pytest.fixture
def status_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(status.ENV_DIR, str(tmp_path / "status"))
    status.forget()
    yield tmp_path / "status"
    status.forget()


def test_publish_merges_fields_and_replaces_the_file_atomically(status_dir) -> None:
    status.publish("silver", state="running", batch=3)
    status.publish("silver", **{"batch": 4, "inserted": 100, "duplicates": 2})
    record = json.loads((status_dir / "silver.json").read_text())
    assert {k: record[k] for k in ("component", "state", "batch", "inserted", "duplicates", "pid")} == {
        "component": "silver", "state": "running", "batch": 4, "inserted": 100, "duplicates": 2, "pid": os.getpid()}
    assert abs(record["updated_us"] - status.now_us()) < 5_000_000
    assert [p.name for p in status_dir.iterdir()] == ["silver.json"]  # no temporary file left behind
    assert status.writer_alive(record)
    assert status.read_all(status_dir)["silver"]["inserted"] == 100


def test_a_status_that_cannot_be_written_never_raises(tmp_path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(status.ENV_DIR, str(tmp_path / "file" / "status"))  # a folder under a file: cannot exist
    status.forget()
    assert status.publish("bronze", state="running")["state"] == "running"
    status.forget()


def test_a_dead_writer_is_told_from_a_live_one_even_with_its_pid_reused() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not status.writer_alive({"pid": proc.pid})
    assert not status.writer_alive({"pid": os.getpid(), "pid_start": "1"})  # same pid, another process start
    assert status.writer_alive({"pid": os.getpid(), "pid_start": status.process_start(os.getpid())})


def test_progress_fields_of_a_kafka_batch() -> None:
    assert progress_fields(PROGRESS) == {
        "batch_id": 41, "batch_duration_ms": 1250, "input_rows": 120, "input_rows_per_s": 60.0, "rows_per_s": 95.5,
        "last_batch_us": 1_800_000_001_500_000,  # 2027-01-15T08:00:00.250Z + 1.25 s
        "offsets_behind": 8,  # (165 - 160) + (70 - 67)
        "max_offsets_behind": 5}


class FakeQuery:
    def __init__(self) -> None:
        self.lastProgress = None


def test_query_reporter_publishes_starting_then_each_new_batch_then_the_end() -> None:
    published, clock = [], [0.0]
    reporter = QueryReporter(["kafka_to_bronze_trades"], lambda c, **f: published.append((c, f)), lambda: clock[0])
    query = FakeQuery()
    reporter.poll("kafka_to_bronze_trades", query)  # within the heartbeat: nothing new
    assert [(c, f["state"]) for c, f in published] == [("bronze", "starting")]
    query.lastProgress = PROGRESS
    reporter.poll("kafka_to_bronze_trades", query)  # a new batch: published at once
    assert published[-1] == ("bronze", {"state": "running", **progress_fields(PROGRESS)})
    reporter.poll("kafka_to_bronze_trades", query)  # the same batch, within the heartbeat: nothing
    clock[0] = 1.5
    reporter.poll("kafka_to_bronze_trades", query)  # a heartbeat (offsets behind kept fresh)
    assert published[-1] == ("bronze", {"state": "running", "offsets_behind": 8, "max_offsets_behind": 5})
    reporter.state("kafka_to_bronze_trades", "failed", "StreamingQueryException: boom")
    assert len(published) == 4 and published[-1] == ("bronze", {"state": "failed",
                                                                "reason": "StreamingQueryException: boom"})


# ---------------------------------------------------------------------------------------------------------------------
# Lag from the folders


def write_log(folder: Path, batch: int, entries: list[dict], compact: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{batch}{'.compact' if compact else ''}").write_text("v1\n" + "\n".join(map(json.dumps, entries)))


def test_silver_lag_counts_bronze_files_and_rows_not_read_in_a_committed_batch(tmp_path) -> None:
    bronze, checkpoint = tmp_path / "bronze", tmp_path / "ckpt"
    files = []
    for i, rows in enumerate([3, 5, 7, 11]):
        path = bronze / f"part-{i}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": list(range(rows))}), path)
        files.append(f"file://{path}")
        write_log(bronze / "_spark_metadata", i, [{"path": files[-1], "size": 1, "isDir": False, "action": "add"}])
    write_log(checkpoint / "sources" / "0", 0, [{"path": files[0], "timestamp": 1, "batchId": 0}])
    write_log(checkpoint / "sources" / "0", 1, [{"path": files[1], "timestamp": 1, "batchId": 1}])
    write_log(checkpoint / "sources" / "0", 2, [{"path": files[2], "timestamp": 1, "batchId": 2}])  # planned only
    (checkpoint / "commits").mkdir()
    for batch in (0, 1):
        (checkpoint / "commits" / str(batch)).write_text("v1\n{}")
    reader = LogReader()
    lag = reader.silver_lag(bronze, checkpoint)
    assert (lag.bronze_batch, lag.files_behind, lag.rows_behind) == (3, 2, 7 + 11)
    (checkpoint / "commits" / "2").write_text("v1\n{}")
    assert reader.silver_lag(bronze, checkpoint).rows_behind == 11


def test_silver_lag_from_the_bronze_reader_s_offset_counts_files_from_its_position(tmp_path) -> None:
    bronze, checkpoint = tmp_path / "bronze", tmp_path / "ckpt"
    rows = [3, 5, 7, 11, 13]
    files = []
    for i, n in enumerate(rows):
        path = bronze / f"part-{i}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": list(range(n))}), path)
        files.append({"path": f"file://{path}", "size": 1, "isDir": False, "action": "add"})
    write_log(bronze / "_spark_metadata", 1, files[:2], compact=True)  # files 0, 1 (batch 0's deleted)
    write_log(bronze / "_spark_metadata", 2, files[2:4])
    write_log(bronze / "_spark_metadata", 3, files[4:])
    for sub in ("offsets", "commits"):
        (checkpoint / sub).mkdir(parents=True)
    head = 'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1,"conf":{}}\n'
    for batch, position in ((4, 1), (5, 3), (6, 4)):
        (checkpoint / "offsets" / str(batch)).write_text(head + json.dumps({"files": position}))
    for batch in (4, 5):
        (checkpoint / "commits" / str(batch)).write_text("v1\n{}")
    reader = LogReader()
    lag = reader.silver_lag(bronze, checkpoint)
    assert (lag.bronze_batch, lag.files_behind, lag.rows_behind) == (3, 2, 11 + 13)  # batch 6 is planned only
    (checkpoint / "commits" / "6").write_text("v1\n{}")
    assert (reader.silver_lag(bronze, checkpoint).files_behind, reader.silver_lag(bronze, checkpoint).rows_behind) \
        == (1, 13)
    assert sink_files_position(head + '{"logOffset":3}') is None and sink_files_position(None) is None


def test_gold_lag_counts_only_silver_versions_that_change_data(tmp_path) -> None:
    log = tmp_path / "silver" / "_delta_log"
    log.mkdir(parents=True)
    commits = {0: [{"metaData": {}}], 1: [{"add": {"path": "a", "dataChange": True}}],
               2: [{"add": {"path": "b", "dataChange": False}}, {"remove": {"path": "a", "dataChange": False}}],
               3: [{"add": {"path": "c", "dataChange": True}}]}
    for version, actions in commits.items():
        (log / f"{version:020d}.json").write_text("\n".join(map(json.dumps, actions)))
    assert [changes_data((log / f"{v:020d}.json").read_text()) for v in range(4)] == [False, True, False, True]
    reader = LogReader()
    assert reader.data_versions_after(tmp_path / "silver", 1, 2) == 0  # only a compaction since: nothing to do
    assert reader.data_versions_after(tmp_path / "silver", 1, 3) == 1
    assert reader.data_versions_after(tmp_path / "silver", None, 3) is None
    assert delta_source_through({"reservoirVersion": 7, "index": -1}) == 6
    assert delta_source_through({"reservoirVersion": 7, "index": 2 ** 63 - 1}) == 7


# ---------------------------------------------------------------------------------------------------------------------
# Health from status dicts


def rec(name: str, pid: int = 10, **fields) -> dict:
    return {"component": name, "pid": pid, "updated_us": NOW - 1_000_000, **fields}


def judge(records: dict, alive: dict, lag: Lag | None = None) -> dict:
    report = evaluate(records, alive, lag or Lag(), NOW)
    return {"verdict": report["verdict"], "exit": report["exit_code"],
            **{c["name"]: (c["state"], c["reason"]) for c in report["components"]}}


def test_healthy_when_every_component_reports_and_keeps_up() -> None:
    records = {"producer": rec("producer", 1, state="running"),
               "bronze": rec("bronze", state="running", offsets_behind=0, last_batch_us=NOW - 500 * 10 ** 6),
               "silver": rec("silver", state="running", last_batch_us=NOW - 2_000_000)}
    assert judge(records, {"producer": True, "bronze": True, "silver": True}, Lag(behind={"silver": 0})) == {
        "verdict": "healthy", "exit": 0, "producer": ("running", None), "bronze": ("running", None),
        "silver": ("running", None)}


def test_silver_s_input_rows_are_its_bronze_records_not_the_files_spark_counts() -> None:
    records = {"silver": rec("silver", state="running", input_rows=2, bronze_rows=1500, inserted=1490,
                             last_batch_us=NOW - 2_000_000)}
    silver = evaluate(records, {"silver": True}, Lag(behind={"silver": 0}), NOW)["components"][0]
    assert silver["details"]["input_rows"] == 1500 and silver["details"]["inserted"] == 1490


def test_a_killed_layer_is_failed_with_the_reason() -> None:
    records = {"bronze": rec("bronze", 11, state="running"), "silver": rec("silver", 12, state="running")}
    result = judge(records, {"bronze": True, "silver": False})
    assert (result["verdict"], result["exit"], result["silver"][0]) == ("unhealthy", 1, "failed")
    assert result["silver"][1] == ("process 12 is gone without stopping (killed or crashed?); its last report, 1 s "
                                   "ago, said running")


def test_nothing_running_when_no_writer_is_alive_whatever_the_files_say() -> None:
    records = {"bronze": rec("bronze", state="stopped", reason="stopped on request (SIGTERM)"),
               "silver": rec("silver", state="running")}
    assert judge(records, {})["verdict"] == "nothing running" and judge(records, {})["exit"] == 2
    assert judge({}, {}) == {"verdict": "nothing running", "exit": 2}


def test_starting_while_the_runner_waits_for_what_it_expects_and_stale_past_the_grace() -> None:
    pipeline = rec("pipeline", 1, state="running", expected=["producer", "bronze"], started_us=NOW - 10_000_000)
    records = {"pipeline": pipeline, "producer": rec("producer", 2, state="running")}
    alive = {"pipeline": True, "producer": True}
    assert judge(records, alive) == {"verdict": "starting", "exit": 0, "producer": ("running", None),
                                     "bronze": ("starting", "not reported yet")}
    pipeline["started_us"] = NOW - int(START_GRACE_S + 5) * 10 ** 6
    assert judge(records, alive)["bronze"] == ("stale", f"has not reported {START_GRACE_S + 5:.0f} s after the "
                                                        f"pipeline started")


def test_stale_when_behind_without_a_batch_or_silent() -> None:
    old = NOW - int(STALE_S + 10) * 10 ** 6
    records = {"silver": rec("silver", state="running", last_batch_us=old),
               "bronze": rec("bronze", state="running", updated_us=NOW - int(HEARTBEAT_STALE_S + 3) * 10 ** 6)}
    result = judge(records, {"silver": True, "bronze": True}, Lag(behind={"silver": 4}))
    assert result["silver"] == ("stale", f"4 files behind its input, no batch for {STALE_S + 10:.0f} s")
    assert result["bronze"] == ("stale", f"no report for {HEARTBEAT_STALE_S + 3:.0f} s (hung?)")
    assert result["exit"] == 1
    # not behind: an old last batch is a quiet market, not a problem
    assert judge(records, {"silver": True}, Lag(behind={"silver": 0}))["silver"] == ("running", None)


def test_gold_folded_into_silvers_batches_takes_silvers_state() -> None:
    records = {"silver": rec("silver", 7, state="running"),
               "gold": rec("gold", 7, trades=40, bars=3, duration_ms=80, oldest_ingest_us=NOW - 9_000_000,
                           newest_ingest_us=NOW - 4_000_000, written_at_us=NOW - 1_000_000, silver_version=12,
                           updated_us=NOW - 100 * 10 ** 6)}  # Gold writes seldom; Silver's heartbeat counts
    report = evaluate(records, {"silver": True, "gold": True}, Lag(behind={"gold": 0}), NOW)
    gold = next(c for c in report["components"] if c["name"] == "gold")
    assert (gold["state"], report["exit_code"]) == ("running", 0)
    assert gold["details"]["trade_to_bar_s"] == {"min": 3.0, "max": 8.0}


def test_a_component_stopped_while_the_pipeline_runs_is_a_failure() -> None:
    records = {"pipeline": rec("pipeline", 1, state="running", expected=["bronze"], started_us=NOW),
               "bronze": rec("bronze", 2, state="stopped", reason="finished")}
    assert judge(records, {"pipeline": True})["bronze"] == ("failed", "stopped while the pipeline runs (finished)")


def test_status_as_prometheus_text() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from lakehouse.page.metrics import StatusCollector

    records = {"producer": rec("producer", 1, state="running", trades=120, gaps=1, reconnects=2, malformed=3,
                               delivered=119, undelivered=0),
               "bronze": rec("bronze", 2, state="running", batch_id=41, batch_duration_ms=1250, input_rows=120,
                             rows_per_s=95.5, offsets_behind=8, last_batch_us=NOW - 3_000_000)}
    report = evaluate(records, {"producer": True, "bronze": True}, Lag(versions={"bronze": 41}), NOW)
    registry = CollectorRegistry()
    registry.register(StatusCollector(lambda: report))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples == {
        ("lakehouse_layer_up", (("layer", "bronze"),)): 1.0,
        ("lakehouse_layer_batch_id", (("layer", "bronze"),)): 41.0,
        ("lakehouse_layer_batch_duration_seconds", (("layer", "bronze"),)): 1.25,
        ("lakehouse_layer_input_rows", (("layer", "bronze"),)): 120.0,
        ("lakehouse_layer_rows_per_second", (("layer", "bronze"),)): 95.5,
        ("lakehouse_layer_lag", (("layer", "bronze"), ("unit", "offsets"))): 8.0,
        ("lakehouse_layer_last_commit_age_seconds", (("layer", "bronze"),)): 3.0,
        ("lakehouse_layer_table_version", (("layer", "bronze"),)): 41.0,
        ("lakehouse_producer_trades_total", ()): 120.0, ("lakehouse_producer_gaps_total", ()): 1.0,
        ("lakehouse_producer_reconnects_total", ()): 2.0, ("lakehouse_producer_malformed_total", ()): 3.0,
        ("lakehouse_producer_delivered_total", ()): 119.0, ("lakehouse_producer_undelivered", ()): 0.0,
        ("lakehouse_pipeline_healthy", ()): 1.0}
    assert len(status_families(report)) == 15


# ---------------------------------------------------------------------------------------------------------------------
# infra/status.py with real processes publishing


PUBLISHER = """
import sys, time
from lakehouse.observe import status
for component in sys.argv[1:]:
    status.publish(component, state="running", last_batch_us=status.now_us(), offsets_behind=0)
print("published", flush=True)
time.sleep(120)
"""


def status_cli(data: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO_ROOT / "infra/status.py"), "--data-dir", str(data), *flags],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def publisher(data: Path, *components: str) -> subprocess.Popen:
    env = {**os.environ, status.ENV_DIR: str(data / "status")}
    proc = subprocess.Popen([PYTHON, "-c", PUBLISHER, *components], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "published"
    return proc


def test_make_status_exit_codes_with_real_processes(tmp_path) -> None:
    data = tmp_path / "data"
    nothing = status_cli(data)
    assert nothing.returncode == 2 and "verdict: nothing running (exit 2)" in nothing.stdout
    one_app = publisher(data, "producer", "bronze")
    separate = publisher(data, "silver")  # a layer as a job of its own: another process
    try:
        healthy = status_cli(data, "--json")
        assert healthy.returncode == 0, healthy.stdout
        report = json.loads(healthy.stdout)
        assert (report["verdict"], [(c["name"], c["state"]) for c in report["components"]]) == (
            "healthy", [("producer", "running"), ("bronze", "running"), ("silver", "running")])
        separate.kill()
        separate.wait()
        killed = status_cli(data)
        assert killed.returncode == 1, killed.stdout
        assert f"process {separate.pid} is gone without stopping" in killed.stdout
        assert "verdict: unhealthy (exit 1)" in killed.stdout
    finally:
        for proc in (one_app, separate):
            proc.kill()
            proc.wait()
    assert status_cli(data).returncode == 2


def test_make_status_says_starting_and_exits_0_while_the_runner_starts(tmp_path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, status.ENV_DIR: str(data / "status")}
    code = ("import time; from lakehouse.observe import status; status.publish('pipeline', state='starting', "
            "mode='one application', expected=['producer', 'bronze', 'silver', 'gold'], started_us=status.now_us());"
            " print('ok', flush=True); time.sleep(60)")
    runner = subprocess.Popen([PYTHON, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "ok"
        result = status_cli(data)
        assert result.returncode == 0, result.stdout
        assert "verdict: starting (exit 0)" in result.stdout
        assert [line.split()[:2] for line in result.stdout.splitlines()[2:6]] == [
            ["producer", "starting"], ["bronze", "starting"], ["silver", "starting"], ["gold", "starting"]]
    finally:
        runner.kill()
        runner.wait()


def test_make_status_runs_the_same_command(tmp_path) -> None:
    """make status: the same screen; make itself exits 0, or 2 for any failure (GNU make's own codes), naming the
    command's code ("Error 2")."""
    data = tmp_path / "data"
    nothing = subprocess.run(["make", "-s", "status", f"DATA={data}"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=60)
    assert nothing.returncode == 2 and "verdict: nothing running (exit 2)" in nothing.stdout
    assert "status] Error 2" in nothing.stderr
    proc = publisher(data, "bronze")
    try:
        healthy = subprocess.run(["make", "-s", "status", f"DATA={data}", "JSON=1"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=60)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert json.loads(healthy.stdout)["verdict"] == "healthy"
    finally:
        proc.kill()
        proc.wait()
