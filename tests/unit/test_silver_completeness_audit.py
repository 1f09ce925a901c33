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

from lakehouse.silver.audit import MAX_LISTED, audit, main, parse_args, problems, ranges, render
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


def report_of(symbol: str, trades: int, **fields) -> dict:
    """One pair's report: a pair with no problem, overridden by `fields`."""
    report = {"symbol": symbol, "trades": trades, "trades_without_id": 0, "first_trade_id": None,
              "last_trade_id": None, "distinct_ids": 0, "missing": 0, "missing_ranges": [], "doubled_ids": 0,
              "extra_rows": 0, "doubled_ranges": [], "complete": True}
    return report | fields


def id_table(**ids_by_symbol: list) -> pa.Table:
    symbols = [s.replace("_", "/") for s, ids in ids_by_symbol.items() for _ in ids]
    trade_ids = [i for ids in ids_by_symbol.values() for i in ids]
    return pa.table({"symbol": symbols, "trade_id": trade_ids}, schema=pa.schema([SCHEMA.field(0), SCHEMA.field(1)]))


@pytest.mark.parametrize("values, expected", [
    ([], []),
    ([5], [(5, 5, 1)]),
    ([1, 2, 3], [(1, 3, 3)]),
    ([1, 2, 3, 7, 9, 10], [(1, 3, 3), (7, 7, 1), (9, 10, 2)]),
    ([4, 6], [(4, 4, 1), (6, 6, 1)]),
    ([10 * k + j for k in range(MAX_LISTED + 5) for j in (0, 1)], [(10 * k, 10 * k + 1, 2) for k in range(MAX_LISTED)]),
])
def test_ranges_are_runs_of_consecutive_ids_listed_up_to_the_limit(values, expected):
    import numpy as np

    assert ranges(np.array(values, dtype=np.int64)) == [{"first": f, "last": la, "count": c} for f, la, c in expected]


def test_audit_reports_holes_doubles_and_rows_without_id_per_pair():
    table = id_table(XBT_USDT=[10, 11, 11, 11, 12, 15, 16, 16, 20, None],
                     DOGE_USD=[None, None],
                     ETH_USD=[7, 8, 9])
    assert audit(table) == [
        report_of("DOGE/USD", 2, trades_without_id=2),
        report_of("ETH/USD", 3, first_trade_id=7, last_trade_id=9, distinct_ids=3),
        report_of("XBT/USDT", 10, trades_without_id=1, first_trade_id=10, last_trade_id=20, distinct_ids=6,
                  missing=5, missing_ranges=[{"first": 13, "last": 14, "count": 2},
                                             {"first": 17, "last": 19, "count": 3}],
                  doubled_ids=2, extra_rows=3, doubled_ranges=[{"first": 11, "last": 11, "count": 1},
                                                               {"first": 16, "last": 16, "count": 1}],
                  complete=False)]


@pytest.mark.parametrize("ids, missing_ranges, doubled_ranges", [
    ([1], [], []),
    ([1, 3], [{"first": 2, "last": 2, "count": 1}], []),
    ([4, 4], [], [{"first": 4, "last": 4, "count": 1}]),
])
def test_audit_of_one_or_two_ids(ids, missing_ranges, doubled_ranges):
    (xbt,) = audit(id_table(XBT_USDT=ids))
    assert (xbt["missing_ranges"], xbt["doubled_ranges"], xbt["complete"]) == (
        missing_ranges, doubled_ranges, not missing_ranges and not doubled_ranges)


def test_audit_lists_doubles_up_to_the_limit_and_counts_them_all():
    ids = [i for i in range(1, 100) for _ in (1, 2) if i % 2] + [i for i in range(1, 100) if not i % 2]
    (xbt,) = audit(id_table(XBT_USDT=ids))
    assert (xbt["distinct_ids"], xbt["doubled_ids"], xbt["extra_rows"], xbt["missing"]) == (99, 50, 50, 0)
    assert xbt["doubled_ranges"] == [{"first": i, "last": i, "count": 1} for i in range(1, 2 * MAX_LISTED, 2)]


def test_problems_name_each_missing_pair_hole_and_double():
    pairs = [report_of("ETH/USD", 3, first_trade_id=7, last_trade_id=9, distinct_ids=3),
             report_of("XBT/USDT", 10, first_trade_id=10, last_trade_id=20, missing=5, doubled_ids=2, extra_rows=3,
                       complete=False)]
    assert problems(pairs, None) == ["XBT/USDT: 5 trade_id(s) missing inside 10..20",
                                     "XBT/USDT: 2 trade_id(s) held more than once (3 extra row(s))"]
    assert problems(pairs[:1], ["ETH/USD", "SOL/USD", "ADA/USD"]) == [
        "no trades of SOL/USD in Silver (symbols present: ETH/USD)",
        "no trades of ADA/USD in Silver (symbols present: ETH/USD)"]
    assert problems([], ["SOL/USD"]) == ["no trades of SOL/USD in Silver (symbols present: none)"]
    assert problems(pairs[:1], ["ETH/USD"]) == []


def test_report_text_lists_ranges_counts_and_the_verdict():
    many = [{"first": 3 * k, "last": 3 * k, "count": 1} for k in range(MAX_LISTED)]
    pairs = [report_of("DOGE/USD", 2_000, trades_without_id=2_000),
             report_of("ETH/USD", 3, first_trade_id=7, last_trade_id=9, distinct_ids=3),
             report_of("XBT/USDT", 12_345, trades_without_id=1_001, first_trade_id=10, last_trade_id=20_000,
                       missing=5_000, missing_ranges=[{"first": 13, "last": 14, "count": 2},
                                                      {"first": 17, "last": 17, "count": 1}],
                       doubled_ids=1_500, doubled_ranges=many, complete=False)]
    found = ["XBT/USDT: 5000 trade_id(s) missing inside 10..20000", "XBT/USDT: 1500 trade_id(s) held more than once"]
    assert render(pairs, "data/silver/t", 4, found).split("\n") == [
        "Silver completeness audit: data/silver/t (Delta version 4), 3 pair(s)",
        "DOGE/USD: 2,000 trade(s); 2,000 without trade_id (API v1): not auditable by id",
        "ETH/USD: 3 trade(s), trade_id 7..9: complete",
        "XBT/USDT: 12,345 trade(s), trade_id 10..20000; 5,000 missing: 13..14 (2), 17; 1,500 held twice or more: "
        + ", ".join(str(3 * k) for k in range(MAX_LISTED)) + ", ... (1500 in all)"
        "; 1,001 without trade_id (API v1): not auditable by id",
        "PROBLEM: XBT/USDT: 5000 trade_id(s) missing inside 10..20000",
        "PROBLEM: XBT/USDT: 1500 trade_id(s) held more than once",
        "verdict: 2 problem(s)"]
    assert render(pairs[1:2], "s", 0, []).split("\n") == [
        "Silver completeness audit: s (Delta version 0), 1 pair(s)", "ETH/USD: 3 trade(s), trade_id 7..9: complete",
        "verdict: complete: no hole, no double"]
    assert render([report_of("XBT/USDT", 3, first_trade_id=1, last_trade_id=3, missing=0, doubled_ids=1,
                             doubled_ranges=[{"first": 2, "last": 2, "count": 1}], complete=False)],
                  "s", 0, ["x"]).split("\n")[1] == "XBT/USDT: 3 trade(s), trade_id 1..3; 1 held twice or more: 2"


def test_flags_default_to_the_project_table_and_all_pairs():
    args = parse_args([])
    assert (args.silver, args.symbol, args.json) == ("data/silver/crypto_trades", None, False)
    args = parse_args(["--silver", "t", "--symbol", "XBT/USDT", "--symbol", "ETH/USD", "--json"])
    assert (args.silver, args.symbol, args.json) == ("t", ["XBT/USDT", "ETH/USD"], True)


def test_main_prints_the_report_and_exits_by_the_verdict(silver, capsys):
    assert main(["--silver", silver, "--json", "--symbol", "ETH/USD", "--symbol", "DOGE/USD"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "table": silver, "version": 1, "complete": True, "problems": [],
        "pairs": [report_of("DOGE/USD", 3, trades_without_id=3),
                  report_of("ETH/USD", 50, first_trade_id=7, last_trade_id=56, distinct_ids=50)]}
    DeltaTable(silver).delete("symbol = 'XBT/USDT' AND trade_id = 150")
    assert main(["--silver", silver]) == 1
    assert capsys.readouterr().out.split("\n") == [
        f"Silver completeness audit: {silver} (Delta version 2), 3 pair(s)",
        "DOGE/USD: 3 trade(s); 3 without trade_id (API v1): not auditable by id",
        "ETH/USD: 50 trade(s), trade_id 7..56: complete",
        "XBT/USDT: 199 trade(s), trade_id 100..299; 1 missing: 150",
        "PROBLEM: XBT/USDT: 1 trade_id(s) missing inside 100..299",
        "verdict: 1 problem(s)", ""]


def test_main_refuses_a_missing_table_or_one_without_ids(tmp_path, capsys):
    assert main(["--silver", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"error: no Delta table at {tmp_path / 'nothing'}\n"
    other = str(tmp_path / "other")
    write_deltalake(other, pa.table({"symbol": ["XBT/USDT"], "price": [1.5]}))
    assert main(["--silver", other, "--json"]) == 2
    assert capsys.readouterr() == ("", f"error: {other} has no symbol and trade_id columns (it has price, symbol)\n")
