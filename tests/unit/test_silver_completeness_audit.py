"""The Silver completeness audit on Silver-shaped Delta tables written with deltalake (no Spark): a complete table,
a deleted row (a hole), a doubled row, v1 rows without ids, a missing table. The script runs as a user runs it, so
its exit code is checked too (deltalake readers have aborted at exit with 134 in some versions)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from silver_completeness_audit import MAX_LISTED, audit
from tests.helpers import run_script

SCRIPT = "spark/jobs/silver_completeness_audit.py"
SCHEMA = pa.schema([("symbol", pa.string()), ("trade_id", pa.int64()), ("source", pa.string()),
                    ("trade_date", pa.date32())])


def rows(symbol: str, ids: list, day: int = 1, source: str = "ws") -> pa.Table:
    return pa.table({"symbol": [symbol] * len(ids), "trade_id": ids, "source": [source] * len(ids),
                     "trade_date": [dt.date(2026, 1, day)] * len(ids)}, schema=SCHEMA)


@pytest.fixture
def silver(tmp_path: Path) -> str:
    """XBT/USDT ids 100..299 over two days and two commits (some from REST), ETH/USD 7..56, DOGE/USD three v1 rows."""
    path = str(tmp_path / "silver" / "crypto_trades")
    write_deltalake(path, pa.concat_tables([rows("XBT/USDT", list(range(100, 200)), 1),
                                            rows("ETH/USD", list(range(7, 57)), 1)]), partition_by=["trade_date"])
    write_deltalake(path, pa.concat_tables([rows("XBT/USDT", list(range(200, 250)), 2),
                                            rows("XBT/USDT", list(range(250, 300)), 2, "rest"),
                                            rows("DOGE/USD", [None, None, None], 2)]),
                    partition_by=["trade_date"], mode="append")
    return path


def run(path: str, *extra: str):
    result = run_script(SCRIPT, "--silver", path, *extra, timeout=120)
    assert result.returncode in (0, 1, 2), f"exit {result.returncode}: {result.stderr}"
    return result


def pair(report: dict, symbol: str) -> dict:
    return next(p for p in report["pairs"] if p["symbol"] == symbol)


def test_complete_table_exits_0_with_exact_report(silver):
    result = run(silver, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["complete"] is True and report["problems"] == [] and report["version"] == 1
    assert pair(report, "XBT/USDT") == {
        "symbol": "XBT/USDT", "trades": 200, "trades_without_id": 0, "first_trade_id": 100, "last_trade_id": 299,
        "distinct_ids": 200, "missing": 0, "missing_ranges": [], "doubled_ids": 0, "extra_rows": 0,
        "doubled_ranges": [], "complete": True}
    assert pair(report, "DOGE/USD")["trades_without_id"] == 3 and pair(report, "DOGE/USD")["complete"] is True
    text = run(silver).stdout
    assert "XBT/USDT: 200 trade(s), trade_id 100..299: complete" in text
    assert "DOGE/USD: 3 trade(s); 3 without trade_id (API v1): not auditable by id" in text


def test_deleted_rows_are_holes_exit_1(silver):
    DeltaTable(silver).delete("symbol = 'XBT/USDT' AND (trade_id = 150 OR (trade_id >= 201 AND trade_id <= 203))")
    result = run(silver, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    xbt = pair(report, "XBT/USDT")
    assert (xbt["trades"], xbt["missing"], xbt["complete"]) == (196, 4, False)
    assert xbt["missing_ranges"] == [{"first": 150, "last": 150, "count": 1}, {"first": 201, "last": 203, "count": 3}]
    assert report["problems"] == ["XBT/USDT: 4 trade_id(s) missing inside 100..299"]
    assert pair(report, "ETH/USD")["complete"] is True
    text = run(silver).stdout
    assert "XBT/USDT: 196 trade(s), trade_id 100..299; 4 missing: 150, 201..203 (3)" in text
    assert "PROBLEM: XBT/USDT: 4 trade_id(s) missing inside 100..299" in text


def test_doubled_rows_exit_1(silver):
    write_deltalake(silver, pa.concat_tables([rows("ETH/USD", [20, 21, 21], 1), rows("ETH/USD", [56], 2, "rest")]),
                    partition_by=["trade_date"], mode="append")
    result = run(silver, "--json", "--symbol", "ETH/USD")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [p["symbol"] for p in report["pairs"]] == ["ETH/USD"]
    eth = pair(report, "ETH/USD")
    assert (eth["trades"], eth["distinct_ids"], eth["doubled_ids"], eth["extra_rows"]) == (54, 50, 3, 4)
    assert eth["doubled_ranges"] == [{"first": 20, "last": 21, "count": 2}, {"first": 56, "last": 56, "count": 1}]
    assert report["problems"] == ["ETH/USD: 3 trade_id(s) held more than once (4 extra row(s))"]


def test_symbol_filter_and_unknown_symbol(silver):
    result = run(silver, "--symbol", "XBT/USDT")
    assert result.returncode == 0 and "ETH/USD" not in result.stdout
    result = run(silver, "--symbol", "XBT/USD")
    assert result.returncode == 1
    assert "PROBLEM: no trades of XBT/USD in Silver (symbols present: none)" in result.stdout


def test_no_table_or_bad_flag_exit_2(tmp_path):
    result = run(str(tmp_path / "nothing"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: no Delta table at {tmp_path / 'nothing'}"
    assert "Traceback" not in result.stderr
    result = run_script(SCRIPT, "--silvr", "x", timeout=60)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_many_holes_listed_up_to_the_limit_counted_in_full():
    ids = [i for i in range(1, 200_001) if i % 5000 != 0]  # 199,960 rows: 39 single-id holes inside 1..199,999
    schema = pa.schema([SCHEMA.field(0), SCHEMA.field(1)])
    table = pa.table({"symbol": ["XBT/USDT"] * len(ids), "trade_id": ids}, schema=schema)
    (xbt,) = audit(table)
    assert (xbt["trades"], xbt["first_trade_id"], xbt["last_trade_id"], xbt["missing"]) == (199_960, 1, 199_999, 39)
    listed = [{"first": k * 5000, "last": k * 5000, "count": 1} for k in range(1, MAX_LISTED + 1)]
    assert xbt["missing_ranges"] == listed
