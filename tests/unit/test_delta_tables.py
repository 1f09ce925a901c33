"""The pure parts of lakehouse/lake/delta.py: what counts as a write conflict, backoff, transaction ids, SQL literals,
the --maintenance-every flag, and refusing a table and a checkpoint that do not belong together."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest

from lakehouse.lake.delta import (SAFE_PROPERTY, conflict_backoff, drop_hadoop_checksums, is_write_conflict,
                                  parse_maintenance_every, quoted_identifier, retry_on_conflict, table_pairing_problem)


class ConcurrentAppendException(Exception):
    """Named like the exception Delta's Python API raises."""


@pytest.mark.parametrize("error, conflict", [
    (ConcurrentAppendException("Files were added to partition [trade_date=2026-01-01] by a concurrent update"), True),
    (RuntimeError("[DELTA_CONCURRENT_DELETE_READ] This transaction attempted to read one or more files that were "
                  "deleted (for example part-0.parquet) by a concurrent update"), True),
    (RuntimeError("io.delta.exceptions.ConcurrentDeleteDeleteException: ..."), True),
    (RuntimeError("[DELTA_METADATA_CHANGED] MetadataChangedException: The metadata of the Delta table has been "
                  "changed by a concurrent update"), True),
    (RuntimeError("[PATH_NOT_FOUND] Path does not exist"), False),
    (ValueError("Concurrency is hard"), False),
])
def test_is_write_conflict(error, conflict):
    assert is_write_conflict(error) is conflict


def test_conflict_backoff_doubles_up_to_five_seconds_with_jitter():
    rng = random.Random(1)
    for attempt, cap in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 5.0), (30, 5.0)]:
        delays = [conflict_backoff(attempt, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays) and max(delays) - min(delays) > cap / 10


def test_retry_on_conflict_retries_conflicts_only(monkeypatch):
    from lakehouse.lake import delta as delta_tables

    monkeypatch.setattr(delta_tables.time, "sleep", lambda _s: None)
    calls = []

    def conflicting_twice():
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentAppendException("concurrent update")
        return "written"

    def failing(error: Exception):
        def write():
            calls.append(1)
            raise error
        return write

    assert retry_on_conflict(conflicting_twice, "test") == "written" and len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        retry_on_conflict(failing(ValueError("bad data")), "test")
    assert len(calls) == 1  # not a conflict: no retry
    calls.clear()
    with pytest.raises(ConcurrentAppendException):
        retry_on_conflict(failing(ConcurrentAppendException("always")), "test", attempts=4)
    assert len(calls) == 4


def test_a_path_is_quoted_as_an_identifier_and_only_plain_properties_reach_sql_text():
    """The one SQL statement left (setting table properties) quotes the path as an identifier and takes only
    properties of a plain shape; data values never reach SQL text (Column expressions: test_silver_parse.py)."""
    assert quoted_identifier("/lake/gold") == "`/lake/gold`"
    assert quoted_identifier("/lake/we`ird") == "`/lake/we``ird`"
    assert SAFE_PROPERTY.fullmatch("delta.enableChangeDataFeed") and SAFE_PROPERTY.fullmatch("interval 7 days")
    assert not SAFE_PROPERTY.fullmatch("x' = 'y") and not SAFE_PROPERTY.fullmatch("a;b")


def test_retry_on_conflict_forgets_what_it_read_before_each_retry(monkeypatch):
    from lakehouse.lake import delta as delta_tables

    monkeypatch.setattr(delta_tables.time, "sleep", lambda _s: None)
    forgotten = []
    attempts = iter([ConcurrentAppendException("lost"), None])

    def write():
        error = next(attempts)
        if error:
            raise error
        return "done"

    assert retry_on_conflict(write, "test", rng=random.Random(1), on_conflict=lambda: forgotten.append(1)) == "done"
    assert forgotten == [1]


@pytest.mark.parametrize("text, seconds", [("1 hour", 3600.0), ("30 minutes", 1800.0), ("off", 0.0), ("0", 0.0),
                                           ("90s", 90.0)])
def test_parse_maintenance_every(text, seconds):
    assert parse_maintenance_every(text) == seconds


def test_parse_maintenance_every_refuses_junk():
    with pytest.raises(argparse.ArgumentTypeError):
        parse_maintenance_every("sometimes")


def test_table_pairing(tmp_path: Path):
    table, checkpoint = tmp_path / "silver", tmp_path / "ck"
    assert table_pairing_problem(str(table), str(checkpoint)) is None  # both new
    (checkpoint / "commits").mkdir(parents=True)
    (checkpoint / "commits" / "0").touch()
    problem = table_pairing_problem(str(table), str(checkpoint))
    assert "has committed batches 0..0" in problem and "was deleted or moved" in problem
    (table / "_delta_log").mkdir(parents=True)
    assert table_pairing_problem(str(table), str(checkpoint)) is None  # the pair that belongs together
    assert table_pairing_problem(str(table), str(tmp_path / "new-ck")) is None  # a new checkpoint: MERGE dedups
    parquet = tmp_path / "old_silver"
    parquet.mkdir()
    (parquet / "part-0.parquet").touch()
    assert "is not a Delta table" in table_pairing_problem(str(parquet), str(tmp_path / "ck2"))
    assert table_pairing_problem("s3a://lake/silver", str(checkpoint)) is None  # not checked off the local disk


@pytest.mark.parametrize("job, tables", [
    ("spark/jobs/bronze_to_silver_trades.py", ["out", "quarantine"]),
    ("spark/jobs/silver_to_gold_ohlcv.py", ["out"]),
])
def test_silver_and_gold_jobs_refuse_a_checkpoint_whose_table_is_gone(tmp_path: Path, job: str, tables: list[str]):
    """The jobs themselves (run as a user runs them) exit 2 with the reason, before starting Spark, for each of their
    tables: one table deleted while the other is there is refused too."""
    import subprocess
    import sys

    checkpoint = tmp_path / "ck"
    (checkpoint / "commits").mkdir(parents=True)
    for n in range(3):
        (checkpoint / "commits" / str(n)).touch()
    for missing in tables:
        paths = {name: tmp_path / name for name in tables}
        for name, path in paths.items():
            if name != missing:
                (path / "_delta_log").mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, job, "--checkpoint", str(checkpoint)]
        for name, path in paths.items():
            argv += [f"--{name}", str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert (f"error: checkpoint {checkpoint} has committed batches 0..2 but {paths[missing]} is not there: the "
                "table was deleted or moved" in result.stderr), result.stderr
        for path in paths.values():
            if (path / "_delta_log").is_dir():
                (path / "_delta_log").rmdir()


def test_drop_hadoop_checksums_deletes_only_the_hidden_checksums_in_the_log(tmp_path: Path):
    log_dir = tmp_path / "t" / "_delta_log"
    (log_dir / "_commits").mkdir(parents=True)
    kept = ["00000000000000000000.json", "00000000000000000000.crc", "00000000000000000010.checkpoint.parquet",
            "_last_checkpoint", "_commits"]
    hidden = [".00000000000000000000.json.crc", ".00000000000000000000.crc.crc",
              ".00000000000000000010.checkpoint.parquet.crc", "._last_checkpoint.crc"]
    for name in kept[:-1] + hidden:
        (log_dir / name).write_bytes(b"x")
    (tmp_path / "t" / ".part-0.parquet.crc").write_bytes(b"x")  # outside the log: not this function's business

    assert drop_hadoop_checksums(str(tmp_path / "t")) == len(hidden)
    assert sorted(p.name for p in log_dir.iterdir()) == sorted(kept)
    assert (tmp_path / "t" / ".part-0.parquet.crc").exists()
    assert drop_hadoop_checksums(f"file://{tmp_path}/t") == 0  # nothing left: a second start deletes nothing


def test_drop_hadoop_checksums_leaves_other_file_systems_and_missing_tables_alone(tmp_path: Path):
    assert drop_hadoop_checksums("s3a://bucket/lake/silver") == 0
    assert drop_hadoop_checksums(str(tmp_path / "no_table")) == 0
