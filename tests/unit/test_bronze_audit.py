"""The Bronze audit's pure functions: reading _spark_metadata, per-partition figures, the verdict.

No Spark, no broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse.bronze import audit


def log_text(*paths: str, action: str = "add", version: str = "v1") -> str:
    lines = [version] + [json.dumps({"path": f"file://{p}", "size": 100 + i, "isDir": False, "modificationTime": 1,
                                     "blockReplication": 1, "blockSize": 33554432, "action": action})
                         for i, p in enumerate(paths)]
    return "\n".join(lines)


def test_batches_without_compaction_in_order() -> None:
    sink = audit.committed_files({"0": log_text("/b/a.parquet", "/b/b.parquet"), "1": log_text("/b/c.parquet"),
                                  ".0.crc": "junk", ".1.abc.tmp": "junk"})
    assert list(sink.files) == ["/b/a.parquet", "/b/b.parquet", "/b/c.parquet"]
    assert sink.files["/b/b.parquet"] == 101
    assert (sink.latest_batch, sink.compact_batch, sink.missing_batches, sink.errors) == (1, None, [], [])


def test_listing_starts_at_the_newest_compact_file() -> None:
    # compactInterval 2: 0, 1.compact (0 and 1), 2, 3.compact (0..3), 4. Batch 0 and 2 files may have been deleted.
    texts = {
        "1.compact": log_text("/b/0.parquet", "/b/1.parquet"),
        "2": log_text("/b/2.parquet"),
        "3.compact": log_text("/b/0.parquet", "/b/1.parquet", "/b/2.parquet", "/b/3.parquet"),
        "4": log_text("/b/4.parquet"),
    }
    sink = audit.committed_files(texts)
    assert list(sink.files) == [f"/b/{i}.parquet" for i in range(5)]
    assert (sink.latest_batch, sink.compact_batch, sink.missing_batches) == (4, 3, [])


def test_a_deleted_entry_leaves_the_listing() -> None:
    sink = audit.committed_files({"0": log_text("/b/a.parquet", "/b/b.parquet"),
                                  "1": log_text("/b/a.parquet", action="delete")})
    assert list(sink.files) == ["/b/b.parquet"]


def test_missing_batch_file_is_reported() -> None:
    sink = audit.committed_files({"0": log_text("/b/a.parquet"), "2": log_text("/b/c.parquet")})
    assert sink.missing_batches == [1]
    assert list(sink.files) == ["/b/a.parquet", "/b/c.parquet"]


def test_batches_before_the_compact_file_are_not_needed() -> None:
    sink = audit.committed_files({"9.compact": log_text("/b/a.parquet"), "10": log_text("/b/b.parquet")})
    assert sink.missing_batches == [] and list(sink.files) == ["/b/a.parquet", "/b/b.parquet"]


def test_empty_log() -> None:
    sink = audit.committed_files({})
    assert (sink.files, sink.latest_batch, sink.missing_batches) == ({}, None, [])


@pytest.mark.parametrize("text, message", [
    ("", "not a log version"),
    ("v2\n", "newer than this audit reads"),
    ('v1\n{"path": "file:///b/a.parquet"}\nnot json', "0:3: not JSON"),
    ('v1\n{"size": 3}', "0:2: no path"),
])
def test_unreadable_log_file(text: str, message: str) -> None:
    sink = audit.committed_files({"0": text})
    assert len(sink.errors) == 1 and message in sink.errors[0]


def entry(path: str, **fields) -> str:
    return json.dumps({"path": path, **fields})


def test_skipped_entries_and_batches_do_not_end_the_listing() -> None:
    sink = audit.committed_files({
        "0": "\n".join(["v1", entry("file:///b/dir", isDir=True), entry("file:///b/a.parquet", action="add")]),
        "1": "not a log",
        "2": "\n".join(["v1", entry("s3a://lake/x.parquet"), "", entry("file:///b/c.parquet", size=7)]),
        "3": "\n".join(["v1", entry("file:///b/never.parquet", action="delete"), entry("file:///b/d.parquet")]),
    })
    assert sink.files == {"/b/a.parquet": None, "/b/c.parquet": 7, "/b/d.parquet": None}
    assert sink.errors == ["1: the first line is not a log version like v1",
                           "2: s3a://lake/x.parquet: only local (file://) paths can be audited"]


def test_read_sink_log_reads_only_batch_files(tmp_path: Path) -> None:
    log_dir = tmp_path / "_spark_metadata"
    log_dir.mkdir()
    (log_dir / "0").write_text(log_text("/b/a.parquet"))
    (log_dir / "1.compact").write_text(log_text("/b/a.parquet", "/b/b.parquet"))
    (log_dir / ".1.compact.crc").write_text("junk")
    (log_dir / "2").write_bytes(b"v1\xff\n")
    (log_dir / "3").mkdir()
    sink = audit.read_sink_log(tmp_path)
    assert list(sink.files) == ["/b/a.parquet", "/b/b.parquet"]
    assert (sink.latest_batch, sink.compact_batch, sink.missing_batches) == (2, 1, [])
    assert sink.errors == ["2: the first line is not a log version like v1"]


def test_uri_to_local_path() -> None:
    assert audit.uri_to_local_path("file:///data/bronze/part-0%20a.parquet") == "/data/bronze/part-0 a.parquet"
    assert audit.uri_to_local_path("file:/data/x/../bronze/p.parquet") == "/data/bronze/p.parquet"
    assert audit.uri_to_local_path("/data/bronze") == "/data/bronze"
    with pytest.raises(ValueError, match="only local"):
        audit.uri_to_local_path("s3a://lake/bronze/p.parquet")


def test_other_file_systems_are_errors_not_crashes() -> None:
    sink = audit.committed_files({"0": 'v1\n{"path": "s3a://lake/p.parquet", "action": "add"}'})
    assert sink.files == {} and "only local" in sink.errors[0]


@pytest.mark.parametrize("broker, landed, expected", [
    # complete
    ((0, 10), (10, 0, 9, 10), dict(holes=0, head_not_landed=0, duplicates=0, lag=0, beyond_end=0)),
    # tail not landed yet: lag, not holes
    ((0, 15), (10, 0, 9, 10), dict(holes=0, head_not_landed=0, duplicates=0, lag=5, beyond_end=0)),
    # offsets 3..5 missing inside [0, 9], one offset twice
    ((0, 10), (8, 0, 9, 7), dict(holes=3, head_not_landed=0, duplicates=1, lag=0, beyond_end=0)),
    # job started at offset 4 while the broker still holds 0..3
    ((0, 10), (6, 4, 9, 6), dict(holes=0, head_not_landed=4, duplicates=0, lag=0, beyond_end=0)),
    # retention deleted 0..4 after they landed: fine
    ((5, 10), (10, 0, 9, 10), dict(holes=0, head_not_landed=0, duplicates=0, lag=0, beyond_end=0)),
    # Bronze holds offsets the broker never reached: the topic was recreated
    ((0, 3), (10, 0, 9, 10), dict(holes=0, head_not_landed=0, duplicates=0, lag=0, beyond_end=7)),
    # nothing landed yet: all lag
    ((2, 10), None, dict(rows=0, first=None, holes=0, head_not_landed=0, duplicates=0, lag=8, beyond_end=0)),
    # neither the broker nor Bronze has it
    (None, None, dict(log_start=None, rows=0, holes=0, head_not_landed=0, duplicates=0, lag=0, beyond_end=0)),
])
def test_partition_audit(broker, landed, expected) -> None:
    result = audit.partition_audit(0, broker, landed)
    assert {key: getattr(result, key) for key in expected} == expected


def test_partition_unknown_to_the_broker() -> None:
    result = audit.partition_audit(7, None, (3, 0, 2, 3))
    assert (result.log_start, result.end, result.rows, result.lag) == (None, None, 3, 0)


def test_audit_partitions_covers_the_broker_and_bronze_in_order() -> None:
    parts = audit.audit_partitions({1: (0, 4), 0: (0, 10)}, {5: (1, 0, 0, 1), 0: (10, 0, 9, 10)})
    assert [(p.partition, p.log_start, p.rows, p.lag) for p in parts] == [(0, 0, 10, 0), (1, 0, 0, 4), (5, None, 1, 0)]


def test_format_ranges() -> None:
    assert audit.format_ranges([[3, 5], [9, 9]]) == "3-5, 9"
    assert audit.format_ranges([]) == ""


def test_group_duplicates() -> None:
    dups = [{"partition": 0, "offset": o, "copies": 2, "files": ["a", "b"]} for o in (3, 4, 5, 8)]
    dups.append({"partition": 1, "offset": 9, "copies": 3, "files": ["a", "b", "c"]})
    assert audit.group_duplicates(dups) == [(0, 3, 5, 2, ["a", "b"]), (0, 8, 8, 2, ["a", "b"]),
                                            (1, 9, 9, 3, ["a", "b", "c"])]


def test_file_summary() -> None:
    sink = audit.committed_files({"0": log_text("/b/a.parquet", "/b/gone.parquet", "/b/c.parquet")})
    files = audit.file_summary(sink, {"/b/a.parquet": 10, "/b/c.parquet": 30, "/b/stray.parquet": 7})
    assert (files.committed, files.total_bytes, files.min_bytes, files.max_bytes) == (3, 40, 10, 30)
    assert (files.missing, files.orphans, files.orphan_bytes, files.latest_batch) == (
        ["/b/gone.parquet"], ["/b/stray.parquet"], 7, 0)


def make_report(parts, on_disk=None, log=None, **judge_flags) -> tuple[audit.Report, audit.SinkLog]:
    sink = audit.committed_files(log or {"0": log_text("/b/a.parquet")})
    files = audit.file_summary(sink, {"/b/a.parquet": 10} if on_disk is None else on_disk)
    report = audit.Report("t", "localhost:19092", "/b", parts, files)
    flags = {"allow_head_gap": False, "fail_on_orphans": False, **judge_flags}
    return audit.judge(report, sink, **flags), sink


def test_clean_with_lag_is_ok() -> None:
    report, _ = make_report([audit.partition_audit(0, (0, 12), (10, 0, 9, 10))])
    assert (report.exit_code, report.problems, report.warnings) == (0, [], [])
    text = audit.format_report(report)
    assert "lag: 2 records on the broker not landed yet (not a failure)" in text
    assert text.endswith("verdict: OK: 10 rows, no holes, no duplicates, every committed file present")


def test_holes_and_duplicates_fail() -> None:
    part = audit.partition_audit(1, (0, 10), (8, 0, 9, 7))
    part.hole_ranges, part.hole_range_count = [[3, 5]], 1
    report, _ = make_report([part])
    assert report.exit_code == 1
    assert report.problems == ["3 offsets missing inside the landed range (holes; p1: 3)",
                               "1 duplicate rows (the same offset more than once; p1: 1)"]
    report.duplicated_offsets = [{"partition": 1, "offset": 7, "copies": 2, "files": ["/b/x.parquet", "/b/y.parquet"]}]
    text = audit.format_report(report)
    assert "holes in partition 1: 3-5" in text and text.endswith("verdict: FAIL (2 problems)")
    assert "duplicate: partition 1 offset 7 x2 in /b/x.parquet, /b/y.parquet" in text


def test_head_gap_fails_unless_allowed() -> None:
    part = audit.partition_audit(0, (0, 10), (6, 4, 9, 6))
    report, _ = make_report([part])
    assert report.exit_code == 1
    assert report.problems[0].startswith("4 records at the head of the log not landed (p0: 4)")
    report, _ = make_report([part], allow_head_gap=True)
    assert report.exit_code == 0 and "allowed by --allow-head-gap" in report.warnings[0]


def test_missing_committed_file_fails() -> None:
    report, _ = make_report([audit.partition_audit(0, (0, 10), (10, 0, 9, 10))], on_disk={})
    assert report.exit_code == 1
    assert report.problems == ["1 committed files missing on disk (Spark readers of Bronze fail on them): /b/a.parquet"]


def test_orphans_warn_by_default_and_fail_on_request() -> None:
    parts = [audit.partition_audit(0, (0, 10), (10, 0, 9, 10))]
    on_disk = {"/b/a.parquet": 10, "/b/stray.parquet": 5}
    report, _ = make_report(parts, on_disk=on_disk)
    assert report.exit_code == 0 and report.problems == []
    assert report.warnings[0].startswith("1 Parquet files (5 bytes) are not committed in _spark_metadata")
    assert "(1 warnings)" in audit.format_report(report)
    report, _ = make_report(parts, on_disk=on_disk, fail_on_orphans=True)
    assert report.exit_code == 1 and "/b/stray.parquet" in report.problems[0]


def test_broken_sink_log_fails() -> None:
    report, _ = make_report([], log={"0": log_text("/b/a.parquet"), "2": "v1"})
    assert report.exit_code == 1 and "missing batch files [1]" in report.problems[0]


def test_beyond_end_and_unknown_partition_fail() -> None:
    report, _ = make_report([audit.partition_audit(0, (0, 3), (10, 0, 9, 10)),
                             audit.partition_audit(5, None, (1, 0, 0, 1))])
    assert report.exit_code == 1
    assert "past the broker's end offset (p0: 7)" in report.problems[0]
    assert report.problems[1] == "Bronze holds partitions the topic does not have: [5]"


def test_table_has_one_row_per_partition_and_a_total() -> None:
    report, _ = make_report([audit.partition_audit(0, (0, 10), (10, 0, 9, 10)), audit.partition_audit(1, (0, 4), None)])
    lines = audit.format_report(report).splitlines()
    assert lines[2].split() == ["partition", "broker", "log", "start", "broker", "end", "bronze", "rows", "first",
                                "last", "holes", "head", "not", "landed", "duplicates", "lag"]
    assert lines[3].split() == ["0", "0", "10", "10", "0", "9", "0", "0", "0", "0"]
    assert lines[4].split() == ["1", "0", "4", "0", "-", "-", "0", "0", "0", "4"]
    assert lines[5].split() == ["total", "10", "0", "0", "0", "4"]


def test_report_text_lists_ranges_runs_and_files() -> None:
    p0 = audit.partition_audit(0, (0, 30), (25, 0, 29, 24))
    p0.hole_ranges, p0.hole_range_count = [[3, 5], [9, 9]], 3
    p1 = audit.partition_audit(1, (0, 12), (9, 0, 9, 9))
    p1.hole_ranges, p1.hole_range_count = [[4, 4]], 1
    report, _ = make_report([p0, p1])
    report.duplicated_offsets = [{"partition": 0, "offset": offset, "copies": 2,
                                  "files": ["/b/x.parquet", "/b/y.parquet"]} for offset in (7, 8)]
    assert audit.format_report(report).splitlines() == [
        "Bronze audit of /b against topic t on localhost:19092",
        "",
        "partition  broker log start  broker end  bronze rows  first  last  holes  head not landed  duplicates  lag",
        "        0                 0          30           25      0    29      6                0           1    0",
        "        1                 0          12            9      0     9      1                0           0    2",
        "    total                                         34                   7                0           1    2",
        "holes in partition 0: 3-5, 9 (first 2 of 3 ranges)",
        "holes in partition 1: 4",
        "duplicate: partition 0 offsets 7-8 x2 in /b/x.parquet, /b/y.parquet",
        "",
        "files: 1 committed in _spark_metadata (latest batch 0), 10 bytes (min 10, max 10); "
        "0 committed but missing on disk; 0 not committed (orphans)",
        "lag: 2 records on the broker not landed yet (not a failure)",
        "PROBLEM: 7 offsets missing inside the landed range (holes; p0: 6, p1: 1)",
        "PROBLEM: 1 duplicate rows (the same offset more than once; p0: 1)",
        "verdict: FAIL (2 problems)"]


def test_report_text_of_an_empty_bronze() -> None:
    report, _ = make_report([], log={"0": "v1"}, on_disk={})
    assert audit.format_report(report).splitlines()[3:] == [
        "    total                                          0                   0                0           0    0",
        "",
        "files: 0 committed in _spark_metadata (latest batch 0); 0 committed but missing on disk; "
        "0 not committed (orphans)",
        "lag: 0 records on the broker not landed yet",
        "verdict: OK: 0 rows, no holes, no duplicates, every committed file present"]


def test_problem_and_warning_texts_name_every_partition_and_file() -> None:
    parts = [audit.partition_audit(0, (0, 10), (6, 4, 9, 6)), audit.partition_audit(1, (0, 10), (8, 2, 9, 8))]
    sink = audit.committed_files({"0": log_text("/b/a.parquet", "/b/b.parquet")})
    files = audit.file_summary(sink, {"/b/x.parquet": 1, "/b/y.parquet": 2})
    orphans = ("2 Parquet files (3 bytes) are not committed in _spark_metadata (orphans of failed batches): Spark "
               "readers ignore them, glob readers (pyarrow, DuckDB, *.parquet) would count them: "
               "/b/x.parquet, /b/y.parquet")
    other_topics = "Bronze also holds rows of other topics, not audited: {'other': 5}"
    head = "6 records at the head of the log not landed (p0: 4, p1: 2)"

    report = audit.Report("t", "localhost:19092", "/b", parts, files, other_topic_rows={"other": 5})
    audit.judge(report, sink, allow_head_gap=False, fail_on_orphans=False)
    assert report.problems == [
        head + "; pass --allow-head-gap if the job was deliberately started at latest",
        "2 committed files missing on disk (Spark readers of Bronze fail on them): /b/a.parquet, /b/b.parquet"]
    assert report.warnings == [orphans, other_topics]

    report = audit.Report("t", "localhost:19092", "/b", parts, files, other_topic_rows={"other": 5})
    audit.judge(report, sink, allow_head_gap=True, fail_on_orphans=False)
    assert report.warnings == [head + "; allowed by --allow-head-gap (job started at latest)", orphans, other_topics]


def test_json_report_is_indented_with_sorted_keys() -> None:
    report, _ = make_report([])
    assert audit.report_json(report).startswith('{\n  "bootstrap": "localhost:19092",\n  "bronze": "/b",\n'
                                                '  "duplicated_offsets": [],\n  "exit_code": 0,\n')


def test_json_report_round_trips() -> None:
    report, _ = make_report([audit.partition_audit(0, (0, 10), (10, 0, 9, 10))])
    data = json.loads(audit.report_json(report))
    assert data["ok"] is True and data["exit_code"] == 0
    assert data["partitions"][0] == {
        "partition": 0, "log_start": 0, "end": 10, "rows": 10, "first": 0, "last": 9, "distinct": 10, "holes": 0,
        "hole_ranges": [], "hole_range_count": 0, "head_not_landed": 0, "duplicates": 0, "lag": 0, "beyond_end": 0}
    assert data["files"]["committed"] == 1 and data["files"]["total_bytes"] == 10


def test_admin_config_maps_java_sasl_settings() -> None:
    props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
             "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                 'username="u" password="p=q";'}
    assert audit.admin_config("b:9093", props) == {
        "bootstrap.servers": "b:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
        "sasl.username": "u", "sasl.password": "p=q"}


def test_bronze_folder_checks(tmp_path: Path) -> None:
    assert "does not exist" in audit.bronze_problem(str(tmp_path / "nope"))
    assert "has no _spark_metadata" in audit.bronze_problem(str(tmp_path))
    (tmp_path / "_spark_metadata").mkdir()
    assert audit.bronze_problem(str(tmp_path)) is None
    assert audit.bronze_problem(f"file://{tmp_path}") is None
    assert "local folders only" in audit.bronze_problem("s3a://lake/bronze")


def test_parquet_files_on_disk_skips_the_log_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "_spark_metadata").mkdir()
    (tmp_path / "_spark_metadata" / "x.parquet").write_bytes(b"1")
    (tmp_path / ".part-0.parquet.crc").write_bytes(b"12")
    (tmp_path / "part-0.parquet").write_bytes(b"123")
    (tmp_path / "date=2026").mkdir()
    (tmp_path / "date=2026" / "part-1.parquet").write_bytes(b"1234")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "part-2.parquet").write_bytes(b"1")
    (tmp_path / ".part-3.parquet").write_bytes(b"1")
    (tmp_path / "_part-4.parquet").write_bytes(b"1")
    (tmp_path / "notes.txt").write_bytes(b"1")
    assert audit.parquet_files_on_disk(tmp_path) == {str(tmp_path / "part-0.parquet"): 3,
                                                     str(tmp_path / "date=2026" / "part-1.parquet"): 4}


def test_default_arguments() -> None:
    args = audit.parse_args([])
    assert (args.bootstrap, args.topic, args.bronze, args.master) == (
        audit.BOOTSTRAP, "crypto.trades", "data/bronze/crypto_trades", None)
    assert (args.json, args.allow_head_gap, args.fail_on_orphans, args.client_props) == (False, False, False, {})


def test_arguments() -> None:
    args = audit.parse_args(["--bootstrap", "b:9093", "--topic", "t", "--bronze", "/lake/bronze", "--json",
                             "--allow-head-gap", "--fail-on-orphans", "--master", "local[2]"])
    assert (args.bootstrap, args.topic, args.bronze, args.master) == ("b:9093", "t", "/lake/bronze", "local[2]")
    assert (args.json, args.allow_head_gap, args.fail_on_orphans) == (True, True, True)


def test_unreachable_broker_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "_spark_metadata").mkdir()
    assert audit.main(["--bronze", str(tmp_path), "--bootstrap", "localhost:1"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach the Kafka broker at --bootstrap localhost:1 (")


def test_missing_bronze_exits_2(capsys) -> None:
    assert audit.main(["--bronze", "/definitely/not/here"]) == 2
    assert "error: Bronze folder /definitely/not/here does not exist" in capsys.readouterr().err


def test_bad_kafka_properties_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "client.properties"
    path.write_text("group.id=mine\n")
    with pytest.raises(SystemExit) as exc:
        audit.parse_args(["--kafka-properties", str(path)])
    assert exc.value.code == 2 and "group.id is managed" in capsys.readouterr().err
